"""Process services: the device, threads, seeds and RNG state, signals, distributed ranks and
TensorBoard writers. Every stage above uses them; they know nothing of data or models."""
