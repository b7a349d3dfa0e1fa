//! The filesystem collector's selection of mounts.

use super::*;

use crate::mountinfo::tests::mount;

#[test]
fn a_device_once_under_its_shortest_mount_point_and_the_last_mount_over_a_point() {
    let mounts = vec![
        mount("9:0", "/srv/storage", "ext4", "/dev/md0"),
        mount("9:0", "/data", "ext4", "/dev/md0"),
        mount("9:0", "/var/www/data", "ext4", "/dev/md0"),
        mount("0:40", "/mnt/x", "tmpfs", "tmpfs"),
        mount("0:41", "/mnt/x", "ext4", "/dev/sdb1"),
        mount(
            "0:42",
            "/var/lib/docker/overlay2/a/merged",
            "xfs",
            "/dev/sdz",
        ),
        mount("0:43", "/snap/core/1", "squashfs", "/dev/loop0"),
    ];
    let kept = select(mounts, &Selection::default());
    assert_eq!(
        kept,
        [
            mount("9:0", "/data", "ext4", "/dev/md0"),
            mount("0:41", "/mnt/x", "ext4", "/dev/sdb1"),
        ]
    );
}

#[test]
fn filters_and_the_cap() {
    let mounts: Vec<Mount> = (0..10)
        .map(|i| {
            mount(
                &format!("0:{i}"),
                &format!("/m{i}"),
                "ext4",
                &format!("/dev/sd{i}"),
            )
        })
        .collect();
    let mut sel = Selection {
        max_mounts: 3,
        ..Selection::default()
    };
    let points: Vec<String> = select(mounts.clone(), &sel)
        .into_iter()
        .map(|m| m.mount_point)
        .collect();
    assert_eq!(points, ["/m0", "/m1", "/m2"]);
    sel.max_mounts = 64;
    sel.devices = NameFilter::new(&["sd[5-6]".into()], &[]).unwrap();
    assert_eq!(select(mounts.clone(), &sel).len(), 2);
    sel.devices = NameFilter::default();
    sel.fs_types = NameFilter::new(&[], &["ext*".into()]).unwrap();
    assert!(select(mounts, &sel).is_empty());
}

#[test]
fn figures_as_df_computes_them() {
    let m = mount("253:0", "/", "ext4", "/dev/mapper/cryptroot");
    let s = FsStats {
        frsize: 4096,
        blocks: 100,
        bfree: 30,
        bavail: 25,
        files: 64,
        ffree: 60,
    };
    assert_eq!(
        figures(&m, &s),
        Filesystem {
            device: "mapper/cryptroot".into(),
            fstype: "ext4".into(),
            size_bytes: 409_600,
            used_bytes: 286_720,
            avail_bytes: 102_400,
            files: 64,
            files_free: 60,
        }
    );
    // A filesystem that reports more free than total blocks never underflows.
    let odd = FsStats { bfree: 200, ..s };
    assert_eq!(figures(&m, &odd).used_bytes, 0);
}
