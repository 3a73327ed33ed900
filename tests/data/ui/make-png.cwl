cwlVersion: v1.2
class: CommandLineTool
id: make-png
label: Make a PNG
doc: >-
  Paints a small gradient PNG, reporting progress for `steps` seconds first. The web interface's end-to-end
  test runs it from its generated form and previews its image (tests/e2e/test_ui.py).
baseCommand: [sh, -c]
arguments:
  # no $( … ) in the script: CWL would read it as a parameter reference
  - position: 0
    valueFrom: |
      steps="$1"; size="$2"; i=0
      while [ "$i" -lt "$steps" ]; do
        if command -v hpgc-progress >/dev/null; then hpgc-progress `expr 10 + $i \* 80 / $steps` "painting, step $i of $steps"; fi
        sleep 1; i=`expr $i + 1`
      done
      python3 - "$size" "$3" <<'PY'
      import struct, sys, zlib
      size = max(1, min(int(sys.argv[1]), 512))
      blue = {"red": 40, "green": 90, "blue": 230}[sys.argv[2]]
      rows = b"".join(b"\0" + bytes(v for x in range(size) for v in (x * 255 // size, y * 255 // size, blue))
                      for y in range(size))
      def chunk(kind, data):
          return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
      with open("image.png", "wb") as f:
          f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
                  + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
      PY
      echo "painted a $size x $size image"
  - position: 1
    valueFrom: make-png
inputs:
  steps:
    type: int
    label: Seconds of work (one progress report each)
    default: 2
    inputBinding: {position: 2}
  size:
    type: int
    label: Width and height in pixels
    default: 64
    inputBinding: {position: 3}
  tint:
    type:
      type: enum
      symbols: [red, green, blue]
    label: Tint of the gradient
    default: blue
    inputBinding: {position: 4}
stdout: log.txt
outputs:
  image:
    type: File
    format: iana:image/png
    outputBinding: {glob: image.png}
  message:
    type: string
    outputBinding:
      glob: log.txt
      loadContents: true
      outputEval: $(self[0].contents)
$namespaces:
  iana: https://www.iana.org/assignments/media-types/
