"""Speed benchmarks: each prints its figures beside a reference measured in the same run. Not tests.

    python -m benchmarks.render    images/s rendering with 1 and 2 workers, with and without the .npy write
    python -m benchmarks.captions  captions/s of every variant, and with hard negatives
    python -m benchmarks.validate  seconds to validate a variant's captions, GX's import included
    python -m benchmarks.train     samples/s of the training step: the plain PyTorch step, each switch, the project's
    python -m benchmarks.kernels   the training bytes (md5 of the weights) and step time of each CPU kernel configuration
    python -m benchmarks.evaluate  images/s of the image tower, and one full benchmark scoring against padded texts
    python -m benchmarks.binding   binding of ideal vs one_object after training, against the targets

Each takes --params (default params.yaml), --data (default data) and -n (how many items; the
default depends on the benchmark). `render`, `captions` and `validate` make their data in memory;
`train` and `evaluate` read a data root, `binding` its trained runs.
"""
