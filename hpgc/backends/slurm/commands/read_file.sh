# Print the size of, or bytes of, ROOT/FOLDERS.../NAME (see read_file.py). Filled in: FOLDERS, NAME,
# ROOT, MISSING (exit status when it does not exist), ACTION.
set -- {{FOLDERS}}
name={{NAME}}
cd -P -- {{ROOT}} 2>/dev/null || { echo "hpgc: the work root is missing" >&2; exit {{MISSING}}; }
here=$(pwd -P)
for c in "$@"; do
  if [ ! -e "$c" ] && [ ! -L "$c" ]; then exit {{MISSING}}; fi
  if [ -L "$c" ] || ! cd -P -- "$c" 2>/dev/null || [ "$(pwd -P)" != "${here%/}/$c" ]; then
    echo "hpgc: $c is not a plain folder inside the job directory" >&2; exit 3
  fi
  here=${here%/}/$c
done
if [ ! -e "./$name" ] && [ ! -L "./$name" ]; then exit {{MISSING}}; fi
size=$(find "./$name" -maxdepth 0 -type f -links 1 -printf '%s')
if [ -z "$size" ]; then echo "hpgc: $name is not a regular file with a single link" >&2; exit 3; fi
{{ACTION}}
