import sys, time, tempfile
import numpy as np, tensorflow as tf
import tfnas
from tfnas import spaces
from tfnas.supernet.tuner import OneShotTuner
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 16, 2)).astype("float32"); y = rng.integers(0, 3, 64)
ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
mk = {"sequence": lambda: spaces.SequenceSpace((16, 2), 3, max_blocks=2, widths=(8,)),
      "transformer": lambda: spaces.TransformerSpace((16, 2), 3, max_layers=2, model_dims=(8,), ff_units=(8, 16))}
for name in sys.argv[1:]:
    for strategy in tfnas.strategies.names(one_shot=True):
        t = time.time()
        try:
            tuner = OneShotTuner(mk[name](), strategy=strategy, supernet_epochs=1, directory=tempfile.mkdtemp(),
                                 seed=0, spos_trials=2, enas_trials=2, enas_steps=2, progress=False)
            tuner.search(ds, validation_data=ds, epochs=1, verbose=0)
            print(name, strategy, "OK", tuner.oracle.architecture, round(time.time() - t, 1), flush=True)
        except Exception as e:
            print(name, strategy, "FAIL", type(e).__name__, str(e)[:400], flush=True)
