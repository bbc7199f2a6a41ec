"""Tabular benchmarks: run any oracle by table lookup instead of training.

```python
from tfnas import bench
table = bench.load_nas_bench_macro()        # packaged with tfnas
records = bench.compare(table, ["random", "evolution"], budgets=[50, 100],
                        seeds=range(20))
```
"""

from tfnas.bench.runner import (
    LookupTuner,
    RunResult,
    compare,
    run,
    run_seed,
    summarize,
)
from tfnas.bench.ground_truth import build_table, enumerate_space
from tfnas.bench.tables import (
    Table,
    encode_key,
    load_ground_truth,
    load_nas_bench_macro,
    load_table,
)

__all__ = ["LookupTuner", "RunResult", "Table", "build_table", "compare", "encode_key",
           "enumerate_space", "load_ground_truth", "load_nas_bench_macro", "load_table", "run",
           "run_seed", "summarize"]
