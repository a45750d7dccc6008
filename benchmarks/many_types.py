"""Training-step and sampling cost at many cell types: 10, 100, 300 simulated types (50 cells each).

A balanced tree of K types has 2K − 1 branches. Per K, side by side in one run: the time of one training step
(256 cells, forward + backward + fused AdamW) with each row's head gathered from the branch blocks (the package:
one index_select and one batched matmul) and with every head evaluated for every row, then one picked (the
first implementation, re-created here as the reference);
and generating 20 cells of every type with the default sampler (Euler–Maruyama, 50 steps): seconds and
network cell-rows per generated cell. Branch times are set by depth (no calibration: only the cost is
measured). Run it alone (timings beside another torch process are meaningless); prints markdown.

    .venv/bin/python benchmarks/many_types.py [--types 10 100 300] [--steps 40]
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

import scbranch as sb
from scbranch.hierarchy import Hierarchy
from scbranch.model import BranchedDiffusion
from scbranch.representation import PCARepresentation

N_FEATURES, CELLS_PER_TYPE = 30, 50


def build(n_types: int) -> tuple[BranchedDiffusion, np.ndarray, np.ndarray]:
    tree = Hierarchy.from_dict(sb.simulate.balanced_tree(n_types))

    def set_times(node, t):
        node.time = t
        for child in node.children:
            if not child.is_leaf:
                set_times(child, 0.8 * t)

    set_times(tree.root, 0.9)
    rng = np.random.default_rng(0)
    types = tree.leaves
    means = rng.normal(scale=2.0, size=(n_types, N_FEATURES))
    y = np.repeat(np.arange(n_types), CELLS_PER_TYPE)
    z = (means[y] + rng.normal(size=(len(y), N_FEATURES))).astype(np.float32)
    rep = PCARepresentation(N_FEATURES).fit(rng.normal(size=(200, 60)).astype(np.float32))
    state = sb.model.ModelState(groupby="cell_type", types=types, var_names=[f"g{i}" for i in range(60)],
                                n_comps=N_FEATURES, width=128, n_blocks=3, beta_min=0.1, beta_max=20.0)
    return BranchedDiffusion.from_parts(state, rep, tree), z, y


def all_heads_forward(net, x, t, branch):
    """The first mixed-branch path: every head for every row, then each row's own picked."""
    emb, weight, bias = net._all()
    cond = torch.nn.functional.silu(net.time_emb(t) + emb[branch])
    h = net.inp(x)
    for block in net.blocks:
        h = block(h, cond)
    out = torch.einsum("nw,bwd->nbd", h, weight) + bias
    return out[torch.arange(x.shape[0]), branch]


def step_ms(model, z, y, n_steps: int, forward=None) -> float:
    module = model.module.train()
    opt = torch.optim.AdamW(module.parameters(), lr=1e-4, fused=True)  # as in training (CPU)
    gen = torch.Generator().manual_seed(0)
    original = module.net.forward
    if forward is not None:
        module.net.forward = lambda x, t, b, condition=None: forward(module.net, x, t, b)  # no covariates here
    try:
        times = []
        for i in range(n_steps + 5):
            idx = torch.randint(len(z), (256,), generator=gen)
            t0 = time.perf_counter()
            loss, _ = module.loss(torch.from_numpy(z[idx.numpy()]), torch.from_numpy(y[idx.numpy()]), generator=gen)
            opt.zero_grad()
            loss.mean().backward()
            opt.step()
            if i >= 5:  # warm-up
                times.append(time.perf_counter() - t0)
    finally:
        module.net.forward = original
    return 1000 * float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", type=int, nargs="+", default=[10, 100, 300])
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    logging.getLogger("scbranch").setLevel(logging.WARNING)
    print(f"torch threads: {torch.get_num_threads()}\n")
    print("| types | branches | step ms (own head) | step ms (all heads, previous) | ratio | generate 20/type s "
          "| cell-rows per generated cell |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for k in args.types:
        model, z, y = build(k)
        own = step_ms(model, z, y, args.steps)
        every = step_ms(model, z, y, args.steps, forward=all_heads_forward)
        model.is_trained = True
        model.module.eval()
        t0 = time.perf_counter()
        _, stats = model.sample(20, progress=False)
        gen_s = time.perf_counter() - t0
        print(f"| {k} | {len(model.branches)} | {own:.1f} | {every:.1f} | {every / own:.2f} | {gen_s:.1f} | "
              f"{stats['n_evals'] / (20 * k):.1f} |")


if __name__ == "__main__":
    main()
