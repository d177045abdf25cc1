"""The demo's budget: how DEMO_MINUTES is split between its stages, and its test-set sizes.

Measured split (docs/demo.md): each adapter gets ``prealign_share`` of the budget for
pre-alignment and ``llm_share`` for the LLM stage (both divided among the adapters); ST (on
Whisper base) gets ``ST_PREALIGN_SHARE`` for pre-aligning its adapter on the source-language
transcripts and ``ST_SHARE`` for its LLM stage; the rest goes to data, the encoder caches,
Whisper's decoders and decoding. Test sets grow with the budget, within bounds; at the default
budget (12 minutes): 90 synthetic test sentences, 45 real English prompts, 20 clips per other
real-speech language (``num_real_other``: es/fr/it Asterisk prompts, nl/cs Fish Fillets lines) and
9 synthetic ST clips per direction, the sizes the 18-minute default had before.

Run: ``python recipes/demo/budget.py MINUTES "conv cif" [PREALIGN_SHARE LLM_SHARE]`` prints
``pre_minutes asr_minutes st_pre_minutes st_minutes num_test num_real num_real_other num_st_test``
for ``run.sh`` to read.
"""

from __future__ import annotations

import argparse
from dataclasses import astuple, dataclass

ST_PREALIGN_SHARE = 0.10
ST_SHARE = 0.05


@dataclass(frozen=True)
class DemoBudget:
    """Minutes per stage (per adapter for the ASR stages) and the test sets' sizes (clips)."""

    prealign_minutes: float
    llm_minutes: float
    st_prealign_minutes: float
    st_minutes: float
    num_test: int
    num_real: int
    num_real_other: int
    num_st_test: int


def split_budget(
    minutes: float, num_adapters: int, prealign_share: float = 0.52, llm_share: float = 0.10
) -> DemoBudget:
    """Split ``minutes`` of training budget over ``num_adapters`` ASR adapters and ST."""
    if minutes <= 0 or num_adapters < 1:
        raise ValueError(f"a demo needs minutes > 0 and one adapter at least (got {minutes}, {num_adapters})")
    st_share = ST_PREALIGN_SHARE + ST_SHARE
    if not (0 < prealign_share and 0 < llm_share and prealign_share + llm_share + st_share < 1):
        raise ValueError(
            f"shares {prealign_share} + {llm_share} + {st_share} (ST) must be positive and below 1"
        )
    return DemoBudget(
        prealign_minutes=round(prealign_share * minutes / num_adapters, 2),
        llm_minutes=round(llm_share * minutes / num_adapters, 2),
        st_prealign_minutes=round(ST_PREALIGN_SHARE * minutes, 2),
        st_minutes=round(ST_SHARE * minutes, 2),
        num_test=min(100, max(20, int(7.5 * minutes))),
        num_real=min(50, max(10, int(3.75 * minutes))),
        num_real_other=min(20, max(5, int(1.875 * minutes))),
        num_st_test=min(25, max(4, int(0.75 * minutes))),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("minutes", type=float)
    parser.add_argument("adapters", help="the adapters, space-separated")
    parser.add_argument("prealign_share", type=float, nargs="?", default=0.52)
    parser.add_argument("llm_share", type=float, nargs="?", default=0.10)
    args = parser.parse_args()
    budget = split_budget(args.minutes, len(args.adapters.split()), args.prealign_share, args.llm_share)
    print(" ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in astuple(budget)))


if __name__ == "__main__":
    main()
