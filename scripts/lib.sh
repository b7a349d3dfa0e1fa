# Shared by the install scripts (sourced, not run).

# install_config SHIPPED TARGET MODE: installs the default config unless the user has one;
# an edited config is never overwritten, the new default goes beside it as TARGET.dist.
install_config() {
  local shipped=$1 config=$2 mode=$3
  if [ ! -e "$config" ]; then
    install -m "$mode" "$shipped" "$config"
    echo "installed $config: edit it"
  elif cmp -s "$shipped" "$config"; then
    echo "kept $config (unchanged default)"
  else
    install -m "$mode" "$shipped" "$config.dist"
    echo "kept your edited $config; the current default is in $config.dist"
  fi
}
