"""The Embedding Geometry article's experiment: a tiny built-in corpus, two full-softmax runs, same geometry.

The corpus is written for this project. Car and plane share most of their contexts
(engines, passengers, speed); boat and bicycle share some; animals share none of them.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

from jaxgram.config import TrainConfig
from jaxgram.data import count_pairs
from jaxgram.geometry import (
    coordinate_correlation,
    neighbour_overlap,
    procrustes_residual,
)
from jaxgram.tables import table_lines

_GROUPS = {
    "motor": ["car", "plane"],
    "other_vehicle": ["boat", "bicycle"],
    "animal": ["elephant", "lion", "horse", "dog"],
    "motor_adj": ["fast", "loud", "new"],
    "animal_adj": ["big", "wild", "hungry"],
    "food": ["grass", "meat", "fruit"],
    "place": ["forest", "river", "field"],
}

_TEMPLATES = [
    # motor vehicles: car and plane share every one of these
    "the {motor} moves fast",
    "the {motor} has an engine",
    "the {motor} carries passengers",
    "a {motor_adj} {motor} burns fuel",
    "people travel by {motor}",
    "the driver starts the {motor}",
    # other vehicles overlap with them only in part
    "the {other_vehicle} moves slowly",
    "the {other_vehicle} carries one rider",
    "people travel by {other_vehicle} on the {place}",
    # animals live in different contexts
    "the {animal} eats {food}",
    "a {animal_adj} {animal} sleeps in the {place}",
    "the {animal} runs to the {place}",
    "the {animal_adj} {animal} drinks water",
]


def toy_sentences() -> list[list[str]]:
    """Every template filled with every combination of its slots (deterministic, no sampling)."""
    sentences = []
    for template in _TEMPLATES:
        slots = [name for name in _GROUPS if "{" + name + "}" in template]
        for values in itertools.product(*(_GROUPS[s] for s in slots)):
            sentences.append(template.format(**dict(zip(slots, values))).split())
    return sentences


TOY_CONFIG = TrainConfig(objective="softmax", dim=20, window=2, shrink_window=False, epochs=30,
                         min_count=1, sample=0.0, alpha=0.025, batch_size=16, negative=0)


@dataclass
class ToyReport:
    vocab_size: int
    pair_count: int  # the Embedding Geometry article's formula, summed over sentences
    pairs_trained: int  # what the pair generator produced in epoch 1
    cosines: list[dict[str, float]]  # per run: {"car,plane": .., "car,elephant": ..}
    coordinate_correlation: float
    neighbour_overlap: float
    procrustes_residual: float
    nearest_to_car: list[str]

    def format(self) -> str:
        runs = range(1, len(self.cosines) + 1)
        header = ["pair", *(f"run {number}" for number in runs)]
        rows = [[f"cos({pair})", *(f"{run[pair]:.3f}" for run in self.cosines)] for pair in self.cosines[0]]
        lines = [f"vocabulary size: {self.vocab_size}", f"training pairs per epoch: {self.pair_count}", "",
                 *table_lines(header, rows, "<" + ">" * len(runs), widths=[16] + [10] * len(runs), gap="")]
        lines += ["", f"nearest neighbour of car: {', '.join(self.nearest_to_car)}",
                  f"correlation of raw coordinates between runs: {self.coordinate_correlation:+.3f}  (axes are arbitrary)",
                  f"nearest-neighbour overlap between runs (top 5, Jaccard): {self.neighbour_overlap:.3f}  (geometry survives)",
                  f"residual after orthogonal Procrustes alignment: {self.procrustes_residual:.3f}  (a rotation apart)"]
        return "\n".join(lines)


def run_toy(seeds=(1, 2), config: TrainConfig = TOY_CONFIG, progress: bool = False) -> ToyReport:
    """Train the toy model once per seed and compare the runs."""
    from jaxgram.training import train

    sentences = toy_sentences()
    runs = [train(sentences, _with_seed(config, seed), progress=progress) for seed in seeds]
    embeddings = [r.embeddings for r in runs]
    cosines = [{"car,plane": e.similarity("car", "plane"), "car,elephant": e.similarity("car", "elephant")} for e in embeddings]
    first, second = embeddings[0], embeddings[1]
    return ToyReport(
        vocab_size=len(runs[0].vocab),
        pair_count=sum(count_pairs(len(s), config.window) for s in sentences),
        pairs_trained=runs[0].pairs_per_epoch[0],
        cosines=cosines,
        coordinate_correlation=coordinate_correlation(first.vectors, second.vectors),
        neighbour_overlap=neighbour_overlap(first, second, first.index_to_key, k=5),
        procrustes_residual=procrustes_residual(first.vectors, second.vectors),
        nearest_to_car=[e.most_similar("car", topn=1)[0][0] for e in embeddings],
    )


def _with_seed(config: TrainConfig, seed: int) -> TrainConfig:
    return dataclasses.replace(config, seed=seed)
