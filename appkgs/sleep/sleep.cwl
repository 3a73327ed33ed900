cwlVersion: v1.2
class: CommandLineTool
label: Sleep
doc: Waits the given number of seconds, reporting progress each second. Used to test dismiss and progress.
baseCommand: [sh, -c]
arguments:
  # the shell script avoids $( … ): CWL would read it as a parameter reference
  - position: 0
    valueFrom: |
      n="$1"; i=0
      while [ "$i" -lt "$n" ]; do
        if command -v hpgc-progress >/dev/null; then hpgc-progress `expr $i \* 100 / $n` "slept $i of $n s"; fi
        sleep 1; i=`expr $i + 1`
      done
      echo "slept $n s"
  - position: 1
    valueFrom: sleep
inputs:
  seconds:
    type: int
    label: How long to sleep, in seconds.
    default: 5
    inputBinding: {position: 2}
stdout: sleep.txt
outputs:
  message:
    type: string
    outputBinding:
      glob: sleep.txt
      loadContents: true
      outputEval: $(self[0].contents)
