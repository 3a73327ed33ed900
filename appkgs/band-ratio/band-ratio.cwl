cwlVersion: v1.2
class: CommandLineTool
id: band-ratio
label: Normalised band ratio
doc: >-
  (a - b) / (a + b) of two bands of a GeoTIFF, as a Float32 GeoTIFF with the input's georeferencing:
  NDVI with the red and near-infrared bands, NBR with the near- and short-wave infrared bands.
$namespaces:
  iana: https://www.iana.org/assignments/media-types/
requirements:
  DockerRequirement:
    dockerPull: otbtf/4.1.0-cpu
  InitialWorkDirRequirement:
    listing:
      - entryname: ratio.py
        entry: |
          import sys
          import numpy as np
          from osgeo import gdal
          src, a, b, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
          ds = gdal.Open(src)
          x = ds.GetRasterBand(a).ReadAsArray().astype("float64")
          y = ds.GetRasterBand(b).ReadAsArray().astype("float64")
          with np.errstate(divide="ignore", invalid="ignore"):
              r = np.where(x + y == 0, 0, (x - y) / (x + y))
          dst = gdal.GetDriverByName("GTiff").Create(out, ds.RasterXSize, ds.RasterYSize, 1, gdal.GDT_Float32)
          dst.SetGeoTransform(ds.GetGeoTransform())
          dst.SetProjection(ds.GetProjection())
          dst.GetRasterBand(1).WriteArray(r)
          dst.FlushCache()
baseCommand: [python3, ratio.py]
inputs:
  image:
    type: File
    format: iana:image/tiff
    label: A multi-band GeoTIFF.
    inputBinding: {position: 1}
  band_a:
    type: int
    default: 1
    label: Band a (1-based), e.g. near infrared.
    inputBinding: {position: 2}
  band_b:
    type: int
    default: 2
    label: Band b (1-based), e.g. red.
    inputBinding: {position: 3}
arguments:
  - {position: 4, valueFrom: ratio.tif}
outputs:
  ratio:
    type: File
    format: iana:image/tiff
    label: The ratio, Float32 GeoTIFF.
    outputBinding: {glob: ratio.tif}
