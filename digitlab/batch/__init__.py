"""Batch prediction: any number of images in, one row per image out, errors kept as rows.

- `sources`: the inputs (files, folders, glob patterns, tar/zip shards, datasets), listed lazily
  as `Source` objects.
- `run`: a partition of sources -> rows (`predict_partition`); `predict_rows` (rows in order, for
  Python) and `predict_to_file` (CSV, JSON Lines or Parquet, resumable).
- `output`: the formats, the part files and their joining.
- `dask` (the ``batch`` extra): the same partitions as tasks on a Dask cluster (`DaskRunner`,
  `local_cluster`, `connect`), and `predict_dask` for dask arrays, bags and dataframes.

```python
from digitlab.batch import predict_rows, predict_to_file
for row in predict_rows("models/cnn.npz", ["scans/", "shards/*.tar"]):
    print(row.source, row.item, row.answer, row.probability, row.error)
predict_to_file("models/cnn.npz", ["scans/"], "preds.parquet", resume=True)
```
"""

from .run import (
    COLUMNS,
    PARTITION_SIZE,
    Job,
    ModelRef,
    Part,
    Row,
    Summary,
    model_ref,
    partitions,
    predict_partition,
    predict_rows,
    predict_to_file,
    read_partition,
    run_serial,
)
from .sources import (
    DatasetItem,
    File,
    Reader,
    Source,
    TarMember,
    Unreadable,
    ZipMember,
    count_sources,
    iter_sources,
)

__all__ = [
    "COLUMNS", "DatasetItem", "File", "Job", "ModelRef", "PARTITION_SIZE", "Part", "Reader", "Row", "Source",
    "Summary", "TarMember", "Unreadable", "ZipMember", "count_sources", "iter_sources", "model_ref", "partitions",
    "predict_partition", "predict_rows", "predict_to_file", "read_partition", "run_serial",
]
