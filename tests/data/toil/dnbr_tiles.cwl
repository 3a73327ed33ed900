cwlVersion: v1.2
$namespaces:
  iana: https://www.iana.org/assignments/media-types/
$graph:
  - id: ratio
    class: CommandLineTool
    label: Normalised band ratio (a - b) / (a + b)
    requirements:
      DockerRequirement: {dockerPull: otbtf/4.1.0-cpu}
      ResourceRequirement: {coresMin: 1, ramMin: 256}
      InitialWorkDirRequirement:
        listing:
          - entryname: ratio.py
            entry: |
              import sys
              import numpy as np
              from osgeo import gdal
              src, out = sys.argv[1], sys.argv[2]
              ds = gdal.Open(src)
              x = ds.GetRasterBand(1).ReadAsArray().astype("float64")
              y = ds.GetRasterBand(2).ReadAsArray().astype("float64")
              with np.errstate(divide="ignore", invalid="ignore"):
                  r = np.where(x + y == 0, 0, (x - y) / (x + y))
              dst = gdal.GetDriverByName("GTiff").Create(out, ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Float32)
              dst.SetGeoTransform(ds.GetGeoTransform())
              dst.SetProjection(ds.GetProjection())
              dst.GetRasterBand(1).WriteArray(r)
    baseCommand: [python3, ratio.py]
    inputs:
      image: {type: File, inputBinding: {position: 1}}
    arguments: [{position: 2, valueFrom: nbr.tif}]
    outputs:
      nbr: {type: File, outputBinding: {glob: nbr.tif}}
  - id: difference
    class: CommandLineTool
    label: pre - post
    requirements:
      DockerRequirement: {dockerPull: otbtf/4.1.0-cpu}
      ResourceRequirement: {coresMin: 1, ramMin: 256}
    baseCommand: [/opt/otbtf/bin/otbcli_BandMath]
    inputs:
      pre: {type: File, inputBinding: {position: 1, prefix: -il}}
      post: {type: File, inputBinding: {position: 2}}
    arguments:
      - {position: 3, prefix: -exp, valueFrom: im1b1-im2b1}
      - {position: 4, prefix: -out, valueFrom: dnbr.tif}
    outputs:
      dnbr: {type: File, outputBinding: {glob: dnbr.tif}}
  - id: dnbr_tiles
    class: Workflow
    label: dNBR of many tiles
    doc: >-
      The notebooks' dNBR over N tile pairs: the NBR of every pre- and post-fire tile (two scatters), then
      each pair's difference (a dotproduct scatter). Under Toil each of the 3N tool runs is a Slurm job.
    requirements:
      ScatterFeatureRequirement: {}
    inputs:
      pre_fire: {type: 'File[]', label: Tiles before the fire (bands NIR and SWIR).}
      post_fire: {type: 'File[]', label: The same tiles after the fire.}
    outputs:
      dnbr:
        type: 'File[]'
        outputSource: difference/dnbr
    steps:
      nbr_pre:
        run: "#ratio"
        scatter: image
        in: {image: pre_fire}
        out: [nbr]
      nbr_post:
        run: "#ratio"
        scatter: image
        in: {image: post_fire}
        out: [nbr]
      difference:
        run: "#difference"
        scatter: [pre, post]
        scatterMethod: dotproduct
        in: {pre: nbr_pre/nbr, post: nbr_post/nbr}
        out: [dnbr]
