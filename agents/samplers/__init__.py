"""Power sources, one module each, all behind samplers.base.Sampler.

`registry()` maps source names to classes without importing optional third-party modules
(pynvml, jtop are imported inside their samplers' open()/available()).
"""
