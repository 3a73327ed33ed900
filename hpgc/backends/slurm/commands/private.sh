# private DIR: make a user's folder under WORK_ROOT (often mode 1777, where anyone may create any name)
# 0700, or fail when it is not a real folder of this account: another user could have made it first,
# to read or swap what hpgc writes for this one.
private() {
  [ -d "$1" ] || mkdir -m 700 -- "$1" 2>/dev/null
  if [ -L "$1" ] || [ ! -d "$1" ] || [ ! -O "$1" ]; then return 1; fi
  chmod 700 -- "$1"
}
