"""`jaxgram train | neighbors | analogy | similarity | toy`: argument parsing only; work is in the library."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

from jaxgram.errors import ConfigError, DataError

DEFAULT_VECTORS = Path("runs/latest/vectors.bin")

# TrainConfig fields exposed as --options (name, type); booleans get --x / --no-x.
_TRAIN_OPTIONS = {
    "objective": str, "dim": int, "window": int, "negative": int, "ns_exponent": float, "epochs": int,
    "min_count": int, "max_vocab_size": int, "sample": float, "alpha": float, "min_alpha": float,
    "optimizer": str, "init": str, "batch_size": int, "seed": int, "chunk_tokens": int, "workers": int,
    "kernel": str, "alpha_schedule": str,
}
_TRAIN_FLAGS = ("shrink_window", "tied", "shard_tables")
_METAVARS = {int: "N", float: "X"}
# word2vec.c's names for the same settings, so its command lines carry over (-size 200 = --dim 200).
# Each option also takes gensim's name for its field (config.GENSIM_NAMES), as --vector-size. Not
# -output: word2vec.c writes one vectors file there, jaxgram a folder (--out). The parser matches
# single-dash names only in full, as word2vec.c does (cli.py), so -s is neither -size nor -sample.
_WORD2VEC_C_NAMES = {
    "corpus": "-train", "dim": "-size", "window": "-window", "negative": "-negative", "sample": "-sample",
    "epochs": "-iter", "min_count": "-min-count", "alpha": "-alpha", "workers": "-threads",
}


# word2vec.c switches jaxgram takes only at the value that means what it does:
# flag -> (that value, what jaxgram does, what it offers instead of the other value).
_WORD2VEC_C_SWITCHES = {
    "-cbow": (0, "skip-gram", "jaxgram trains skip-gram only (word2vec.c's -cbow 0); it has no CBOW"),
    "-hs": (0, "negative sampling", "jaxgram has no hierarchical softmax: it trains negative sampling (-hs 0, "
                                    "the default) or the full softmax (--objective softmax)"),
}


def _save_formats(args):
    """--save, or word2vec.c's -binary 1|0 for bin|txt; None when neither is given."""
    if args.binary is None:
        return args.save
    if args.save is not None:
        raise ConfigError(f"-binary {args.binary} and --save {args.save} both say what to write: give one")
    return "bin" if args.binary else "txt"


def _check_word2vec_c_switches(args) -> None:
    for flag, (value, _, instead) in _WORD2VEC_C_SWITCHES.items():
        given = getattr(args, flag.lstrip("-"), None)
        if given is not None and given != value:
            raise ConfigError(f"{flag} {given} is not allowed: {instead}")


class _Given(NamedTuple):
    text: str
    option: str  # the name it was given under: --dim, --vector-size or -size


class _KeepSpelling(argparse.Action):
    """Collects each (text, option name) given for a setting; config_from_args converts and checks
    them, so a bad value is a ConfigError that names the option as typed, not an argparse usage."""

    def __call__(self, parser, namespace, text, option_string=None):
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest) or []), _Given(text, option_string)])


def _option_names(name: str) -> list[str]:
    """Every spelling of one setting's option: --dim, then gensim's --vector-size, then word2vec.c's -size."""
    from jaxgram.config import GENSIM_NAMES

    gensim = [gensim_name for gensim_name, field in GENSIM_NAMES.items() if field == name]
    word2vec_c = [_WORD2VEC_C_NAMES[name]] if name in _WORD2VEC_C_NAMES else []
    return ["--" + spelling.replace("_", "-") for spelling in (name, *gensim)] + word2vec_c


def _device_count(text: str):
    if text == "all":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: give a number of devices or 'all'") from None


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_queries(subparsers)


def _register_train(subparsers) -> None:
    train = subparsers.add_parser("train", help="train skip-gram vectors on a LineSentence corpus")
    train.add_argument(*_option_names("corpus"), dest="corpus", required=True,
                       help="text file: one sentence per line, tokens separated by spaces")
    train.add_argument("--out", required=True,
                       help="output folder: the vectors (--save), vocab.txt, vocab.tsv, config.json, loss.json, checkpoint/")
    train.add_argument("--save", metavar="FORMATS", default=None,
                       help="what to write besides the vocabulary, config, loss and checkpoint, comma-separated: bin "
                            "(vectors.bin, word2vec binary), txt (vectors.txt, word2vec text), tsv (TensorBoard's "
                            "vectors.tsv, metadata.tsv, projector_config.pbtxt), npy (E.npy, W.npy), corpus (corpus.npy); "
                            "default: bin")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--encoded-text", action="store_true",
                       help="also write corpus_encoded.txt (the encoded corpus as text, as in the Embedding Geometry article)")
    from jaxgram.config import TrainConfig  # no JAX import: config is plain Python

    defaults = TrainConfig()
    for name, kind in _TRAIN_OPTIONS.items():
        train.add_argument(*_option_names(name), dest=name, action=_KeepSpelling, default=None,
                           metavar=_METAVARS.get(kind), help=_option_help(name, getattr(defaults, name)))
    for name in _TRAIN_FLAGS:
        train.add_argument(*_option_names(name), dest=name, action=argparse.BooleanOptionalAction, default=None,
                           help=f"default: {getattr(defaults, name)}")
    for flag, means in _WORD2VEC_C_SWITCHES.items():
        train.add_argument(flag, dest=flag.lstrip("-"), type=int, default=None, metavar="0|1",
                           help=f"word2vec.c's {flag}: only {means[0]} is jaxgram's ({means[1]})")
    train.add_argument("-binary", dest="binary", type=int, choices=(0, 1), default=None, metavar="0|1",
                       help="word2vec.c's -binary: 1 writes vectors.bin (--save bin), 0 vectors.txt (--save txt)")
    train.add_argument("--compilation-cache", metavar="DIR|off", default=None,
                       help="folder for JAX's persistent compilation cache, or off (default: $JAXGRAM_COMPILATION_CACHE, "
                            "else $XDG_CACHE_HOME/jaxgram/xla or ~/.cache/jaxgram/xla)")
    train.add_argument("--devices", type=_device_count, default=None, metavar="N|all",
                       help="synchronous data parallelism over N devices (a --batch-size given is per device; the "
                            "default step is split across them); "
                            "default: one device (one GPU, or the CPU, where the fused kernel runs --workers threads)")
    cluster = train.add_argument_group("multi-process (one process per host; see README)")
    cluster.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0's coordination service")
    cluster.add_argument("--num-processes", type=int, metavar="N", help="processes in the run")
    cluster.add_argument("--process-id", type=int, metavar="I", help="this process's rank, 0..N-1 (0 writes --out)")
    cluster.add_argument("--distributed", choices=("auto",),
                         help="auto: let JAX detect the cluster (Slurm, Open MPI, TPU) instead of the three flags above")
    train.set_defaults(func=_train)


def _register_queries(subparsers) -> None:
    neighbors = subparsers.add_parser("neighbors", help="nearest neighbours of a word")
    neighbors.add_argument("word")
    neighbors.add_argument("--topn", type=int, default=10, help="how many neighbours (default: 10)")
    _vectors_option(neighbors)
    neighbors.set_defaults(func=_neighbors)

    analogy = subparsers.add_parser("analogy", help="A is to B as C is to ?")
    analogy.add_argument("a")
    analogy.add_argument("b")
    analogy.add_argument("c")
    analogy.add_argument("--topn", type=int, default=5, help="how many answers (default: 5)")
    _vectors_option(analogy)
    analogy.set_defaults(func=_analogy)

    similarity = subparsers.add_parser("similarity", help="cosine similarity of two words")
    similarity.add_argument("a")
    similarity.add_argument("b")
    _vectors_option(similarity)
    similarity.set_defaults(func=_similarity)

    toy = subparsers.add_parser("toy", help="the toy geometry experiment: two seeds, same geometry (offline, seconds)")
    toy.add_argument("--seeds", type=int, nargs=2, default=(1, 2), metavar=("A", "B"),
                     help="the two seeds whose runs are compared (default: 1 2)")
    toy.set_defaults(func=_toy)


def _option_help(name: str, default) -> str:
    """--help for a TrainConfig option: what it does where that is not plain, its allowed values, its default."""
    from jaxgram import config

    choices = {"objective": config.OBJECTIVES, "optimizer": config.OPTIMIZERS, "init": config.INITS,
               "kernel": config.KERNELS, "alpha_schedule": config.ALPHA_SCHEDULES}
    parts = [_OPTION_HELP[name]] if name in _OPTION_HELP else []
    if name in choices:
        parts.append(f"one of {', '.join(choices[name])}")
    if name == "workers":
        parts.append(f"1 to {config.MAX_WORKERS}")
        default = f"the usable cores (affinity mask and cgroup CPU quota), {config.default_workers()} here"
    return "; ".join([*parts, f"default: {default}"])


_OPTION_HELP = {
    "kernel": "who runs sparse SGD negative sampling: fused (one C++ call, CPU; --workers threads race as gensim's "
              "do, bitwise reproducible with 1 worker), xla (the pure JAX step, every GPU and mesh run: one centre of "
              "each of batch-size/(window+1) streams side by side, pair by pair; bitwise reproducible on CPU, on GPU "
              "only with XLA's deterministic flag), auto (fused where it applies, else xla)",
    "alpha_schedule": "per_worker: gensim corpus_file's (alpha falls with each worker's share); linear: word2vec's; "
                      "auto: per_worker for the fused kernel, linear for xla",
    "batch_size": "pairs per step; the default is 16384 for the fused kernel, 1024 for the xla step on CPU and 12288 on an "
                  "accelerator, narrowed for the xla step "
                  "to the widest this vocabulary allows (logged); a wider value is refused; None: that default",
    "workers": "CPU threads of the fused kernel (gensim's workers, word2vec.c's -threads), not JAX devices",
}


def _vectors_option(parser) -> None:
    parser.add_argument("--vectors", type=Path, default=DEFAULT_VECTORS,
                        help=f"word2vec file: .bin, .bin.gz, .bin.bz2 binary, else text; .gz, .bz2 decompressed "
                             f"(default: {DEFAULT_VECTORS})")


def config_from_args(args):
    from jaxgram.config import TrainConfig, with_spelling

    given = {name: getattr(args, name) for name in _TRAIN_OPTIONS if getattr(args, name) is not None}
    switches = {name: getattr(args, name) for name in (*_TRAIN_FLAGS, "devices") if getattr(args, name) is not None}
    given_as = {name: typed[-1].option for name, typed in given.items() if typed[-1].option != _option_names(name)[0]}
    try:
        values = {name: _value(name, typed, _TRAIN_OPTIONS[name]) for name, typed in given.items()}
        return TrainConfig.from_dict({**_resumed_config(args), **values, **switches})
    except ConfigError as error:
        raise with_spelling(error, given_as) from None


def _resumed_config(args) -> dict:
    """With --resume, the checkpoint's config: options not given again keep the run's values
    (so `--resume` alone continues the run as it was, and `--resume --epochs N` extends it)."""
    if not getattr(args, "resume", False):
        return {}
    from jaxgram.train_state import saved_config
    from jaxgram.training import CHECKPOINT_DIR

    saved = saved_config(Path(args.out) / CHECKPOINT_DIR)
    if saved is None:
        _refuse_if_in_use(args.out)  # a run holding the folder may not have written its first checkpoint yet
        raise ConfigError(f"--resume found no checkpoint in {Path(args.out) / CHECKPOINT_DIR}: nothing to continue; "
                          "leave out --resume to start training")
    return saved


def _refuse_if_in_use(out) -> None:
    """rundir.claim's one-line refusal, naming the holder, when another run holds the folder `out`."""
    from jaxgram import rundir

    if Path(out).is_dir():
        with rundir.claim(out):  # let go at once: this run only asks
            pass


def _epochs_before(args) -> int:
    """Epochs the checkpoint being resumed holds (0 for a new run), read before training adds to them."""
    if not args.resume:
        return 0
    from jaxgram.train_state import epochs_trained
    from jaxgram.training import CHECKPOINT_DIR

    return epochs_trained(Path(args.out) / CHECKPOINT_DIR)


def _value(name: str, typed: list[_Given], kind: type):
    """The option's value as `kind`. One name given twice is last-wins, as argparse does; two names for
    one setting (--dim 10 -size 20) is refused, as from_dict refuses dim with vector_size."""
    from jaxgram.validation import describe

    if len({given.option for given in typed}) > 1:
        raise ConfigError(f"{name} is given twice, as {' and as '.join(f'{g.option} {g.text}' for g in typed)}: "
                          "give it once")
    text = typed[-1].text
    try:
        return kind(text)
    except ValueError:
        raise ConfigError(f"{name}={text!r} has the wrong type: expected {describe(kind)}") from None


def cluster_from_args(args):
    from jaxgram.distributed import Cluster

    return Cluster(args.coordinator, args.num_processes, args.process_id, auto=args.distributed == "auto").validate()


def _train(args) -> int:
    from jaxgram.cli import interrupts_held

    # Start-up holds SIGTERM and Ctrl-C until it ends (a second or two): importing JAX runs its C++
    # extension's initialisation, which a KeyboardInterrupt turns into an abort. Not while joining a
    # multi-process run, which waits on the other processes.
    with interrupts_held():
        config, save = _checked_start(args)
    from jaxgram import distributed

    distributed.initialize(cluster_from_args(args), "jaxgram train")  # before any JAX computation
    with interrupts_held():
        _start_jax()
        from jaxgram.training import train
    epochs_before = _epochs_before(args)
    result = train(args.corpus, config, out=args.out, resume=args.resume, progress=not args.no_progress,
                   encoded_text=args.encoded_text, save=save)
    wrote = f"wrote {args.out}" if distributed.is_primary() else "process 0 writes the outputs"
    if epochs_before >= config.epochs:  # a finished run resumed: no epoch ran, so no speed to report
        print(f"nothing to train: the run in {args.out} was already complete ({config.epochs} epochs, final loss "
              f"{result.loss_per_epoch[-1]:.4f}); {wrote}")
    else:
        print(f"trained {len(result.vocab)} words x {config.dim} dims, {config.epochs} epochs, "
              f"final loss {result.loss_per_epoch[-1]:.4f}, {result.words_per_second:,.0f} words/s; {wrote}")
    return 0


def _checked_start(args):
    """(config, save formats), checked before any heavy work; JAX set up for the run (CPU devices,
    compilation cache) but not started."""
    _check_word2vec_c_switches(args)
    config = config_from_args(args)  # plain Python: a bad value is refused before JAX is imported
    from jaxgram import distributed
    from jaxgram.compilation_cache import enable_compilation_cache
    from jaxgram.outputs import DEFAULT_SAVE, checked_save

    formats = _save_formats(args)
    save = checked_save(DEFAULT_SAVE if formats is None else formats)  # --save '' is refused, not the default
    # The CPU devices a mesh (--devices) needs, not one per worker: the workers are threads.
    distributed.configure_cpu_workers(config.workers, config.devices)
    enable_compilation_cache(args.compilation_cache)
    return config, save


def _start_jax() -> None:
    """Create JAX's backends (devices, thread pools) now rather than inside training."""
    import jax

    jax.devices()


def _load(path: Path):
    from jaxgram.cli import interrupts_held

    with interrupts_held():  # gensim's and SciPy's C extensions initialise themselves (see _train)
        from jaxgram.embeddings import Embeddings
    from jaxgram.word2vec_format import is_binary_name

    if not path.exists():
        raise DataError(f"vectors file {path} does not exist; train first or pass --vectors")
    return Embeddings.load_word2vec_format(path, binary=is_binary_name(path))


def _check_topn(topn: int) -> None:
    if topn < 1:
        raise ConfigError(f"topn={topn} is not allowed: it must be >= 1")


def _print_ranked(pairs) -> None:
    for word, score in pairs:
        print(f"{word}\t{score:.4f}")


def _neighbors(args) -> int:
    _check_topn(args.topn)
    _print_ranked(_load(args.vectors).most_similar(args.word, topn=args.topn))
    return 0


def _analogy(args) -> int:
    _check_topn(args.topn)
    _print_ranked(_load(args.vectors).most_similar(positive=[args.b, args.c], negative=[args.a], topn=args.topn))
    return 0


def _similarity(args) -> int:
    print(f"{_load(args.vectors).similarity(args.a, args.b):.4f}")
    return 0


def _toy(args) -> int:
    from jaxgram.cli import interrupts_held

    with interrupts_held():  # imports JAX (see _train)
        from jaxgram.toy import run_toy

    print(run_toy(tuple(args.seeds)).format())
    return 0
