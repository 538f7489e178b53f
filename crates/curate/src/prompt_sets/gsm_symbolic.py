# Generates GSM-style problems with reasoning-gym's own GSM-Symbolic generators.
# Usage: python3 -S -B gsm_symbolic.py ROOT SEED COUNT
#   ROOT: a directory holding the package tree `reasoning_gym/` extracted from its wheel.
# Prints one JSON object per problem: {"index", "task", "question", "answer"}.
# Only the standard library is needed: the package's `__init__` files (which import every
# dataset and their third-party dependencies) are bypassed by registering the packages on the
# way to the generators as bare namespace modules.
import json
import os
import sys
import types

root, seed, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path.insert(0, root)
for name in (
    "reasoning_gym",
    "reasoning_gym.coaching",
    "reasoning_gym.arithmetic",
    "reasoning_gym.arithmetic.gsm_symbolic",
):
    module = types.ModuleType(name)
    module.__path__ = [os.path.join(root, *name.split("."))]
    sys.modules[name] = module

from reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic import (  # noqa: E402
    GSMSymbolicDataset,
    GSMSymbolicDatasetConfig,
)

dataset = GSMSymbolicDataset(GSMSymbolicDatasetConfig(seed=seed, size=count))
for index in range(count):
    item = dataset[index]
    print(
        json.dumps(
            {
                "index": index,
                "task": dataset.task_indices[index],
                "question": item["question"],
                "answer": item["answer"],
            }
        )
    )
