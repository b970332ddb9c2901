"""Edge-side efficiency benchmark: jointcodec's encoder against what a user would run on the device instead.

``jointcodec bench --checkpoint CKPT`` measures, in one process and one run (timings are ratios within one run):

* **jointcodec**: the encoder alone (image -> latent symbols), and encoder + entropy coding (image -> the
  ``.jcc`` bytes: fixed-point context model and range coder);
* **classic codecs**: JPEG 4:2:0 and WebP encoding with Pillow, image -> file bytes;
* **learned codecs**: CompressAI's ``bmshj2018-factorized`` and ``bmshj2018-hyperprior`` (untrained
  weights: timings only), the analysis transform ``g_a`` alone and ``compress()`` (g_a, hyper transforms,
  rANS coding);
* **on-device classification**: jointcodec's whole model (encoder + receiver classifier) and ResNet-18,
  image -> label, so that nothing but the label is sent.

For each: parameters, weights size (serialised safetensors bytes, fp32 and fp16), MACs per image (torch's
FLOP counter, ``jointcodec.evaluation.complexity``), peak working memory, batch-1 latency and batch-64
throughput with 1 thread and with all threads (medians over repeats), and energy per image. Energy is
read from RAPL (``/sys/class/powercap``) where it is readable; otherwise two **estimates** are given, each
labelled: CPU time x a stated power per busy core, and MACs x a stated energy per MAC.

Peak memory: after the timings, glibc is told to map every allocation >= 64 KiB separately and to hand freed
memory back (``mallopt``), the process's peak-RSS mark is reset (``/proc/self/clear_refs``), one warm batch-1
call runs, and the rise of the peak RSS over the RSS before it is its working memory; ``peak_memory_bytes``
adds the fp32 weights. Not available where ``/proc`` or glibc are missing (reported as null).

Modules: ``candidates`` (what is measured), ``measurement`` (how: size, timing, energy, memory, ratios),
``run`` (one run, :func:`run_bench`), ``report`` (Markdown and JSON).
"""

from jointcodec.evaluation.bench.candidates import (
    Candidate,
    classic_candidates,
    compressai_candidates,
    jointcodec_candidates,
    macs_of,
    resnet18_candidate,
)
from jointcodec.evaluation.bench.measurement import PJ_PER_MAC, RAPL_ROOT, WATTS_PER_CORE, ratios, summary
from jointcodec.evaluation.bench.report import format_markdown, save_outputs
from jointcodec.evaluation.bench.run import BATCH, BenchConfig, run_bench

__all__ = [
    "BATCH", "PJ_PER_MAC", "RAPL_ROOT", "WATTS_PER_CORE", "BenchConfig", "Candidate", "classic_candidates",
    "compressai_candidates", "format_markdown", "jointcodec_candidates", "macs_of", "ratios", "resnet18_candidate",
    "run_bench", "save_outputs", "summary",
]
