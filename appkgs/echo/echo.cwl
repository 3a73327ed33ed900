cwlVersion: v1.2
class: CommandLineTool
label: Echo
doc: >-
  Echoes its inputs back as outputs. Used by OGC's conformance tests and as the smallest end-to-end
  check that a server runs CWL.
baseCommand: [echo, -n]
inputs:
  stringInput:
    type: string
    label: A string, echoed to stdout and returned as stringOutput.
    inputBinding: {position: 1}
  doubleInput:
    type: double?
    label: A number, returned as doubleOutput.
  arrayInput:
    type: int[]?
    label: A list of integers, returned as arrayOutput.
  enumInput:
    type:
      - "null"
      - type: enum
        symbols: [value1, value2, value3]
    label: One of three values, returned as enumOutput.
stdout: echo.txt
outputs:
  stringOutput:
    type: string
    outputBinding:
      glob: echo.txt
      loadContents: true
      outputEval: $(self[0].contents)
  doubleOutput:
    type: double?
    outputBinding:
      outputEval: $(inputs.doubleInput)
  arrayOutput:
    type: int[]?
    outputBinding:
      outputEval: $(inputs.arrayInput)
  enumOutput:
    type: string?
    outputBinding:
      outputEval: $(inputs.enumInput)
