"""Child-process entry point: `python -m eval.stage TRAINER --corpus C --out DIR --config-json J`."""

from __future__ import annotations

import argparse
import json
import sys

from eval.measure import TRAINERS, run_in_this_process, write_child_error
from jaxgram.config import TrainConfig
from jaxgram.errors import JaxgramError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.stage")
    parser.add_argument("trainer", choices=TRAINERS)
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--config-json", required=True)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--initial-vectors", action="store_true", help="jaxgram: also write init_E.npy")
    args = parser.parse_args(argv)
    try:
        config = TrainConfig.from_dict(json.loads(args.config_json))
        if args.trainer == "jaxgram":
            from jaxgram.compilation_cache import enable_compilation_cache
            from jaxgram.distributed import configure_cpu_workers

            configure_cpu_workers(config.workers, config.devices)  # a process start: before JAX runs
            enable_compilation_cache()  # $JAXGRAM_COMPILATION_CACHE or the default folder
        run_in_this_process(args.trainer, args.corpus, config, args.out, progress=args.progress,
                            initial_vectors=args.initial_vectors)
    except JaxgramError as exc:
        write_child_error(args.out, exc)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
