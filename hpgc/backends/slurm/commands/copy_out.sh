# Copy a job's output into a folder its user owns (run as that user, over their own connection): the folder must
# be theirs and writable, the file a regular one (no symlink); written under a temporary name and renamed, so no
# half file carries the final name. Prints the SHA-256 and the size. Filled in: SRC, DIR, NAME (quoted).
src={{SRC}}; dir={{DIR}}; name={{NAME}}
[ -d "$dir" ] && [ -O "$dir" ] && [ -w "$dir" ] || { echo "not a folder of yours you can write to" >&2; exit 3; }
[ -n "$src" ] || exit 0  # the check alone
[ -f "$src" ] && [ ! -L "$src" ] || { echo "the output is not a regular file" >&2; exit 4; }
part="$dir/.$name.hpgc-part"
cp -- "$src" "$part" && mv -f -- "$part" "$dir/$name" || { rm -f -- "$part"; exit 5; }
sum=$(sha256sum -- "$dir/$name") && size=$(stat -c %s -- "$dir/$name") && printf '%s %s\n' "${sum%% *}" "$size"
