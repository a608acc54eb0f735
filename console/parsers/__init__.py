"""Parsers for benchmark and power logs people already have. Pure functions, no I/O.

One module per tool (mlperf, mlperf_power, trtexec, llama_bench, vllm, jetson_containers, ollama,
nvidia_smi, tegrastats_log); detect.detect() names a log's format and detect.PARSERS maps it to its
parser. Every parser raises ParseError (a ValueError naming the format and the line).
"""

from console.parsers.common import ParseError, PowerTrace

__all__ = ["ParseError", "PowerTrace"]
