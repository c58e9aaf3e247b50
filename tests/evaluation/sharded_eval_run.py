"""Run by test_eval_sharding under `accelerate launch`: `govtune eval` on XNLI and FLORES into OUT/xnli and
OUT/flores, counting this process's forward passes into OUT/forwards.{process index}."""

import json
import sys
from pathlib import Path

from govtune.evaluation import scoring


def run(out: Path) -> int:
    from govtune.cli import main
    from govtune.evaluation.sharding import process_state

    calls = []
    forward = scoring._forward

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    scoring._forward = counted
    try:
        common = ["--model", "tiny-llama", "--limit", "3", "--batch-size", "2", "--threads", "1", "--no-progress"]
        for argv in (["eval", "--task", "xnli", "--langs", "en,zh,hi", "--out", str(out / "xnli"), *common],
                     ["eval", "--task", "flores", "--pairs", "en-zh,en-es", "--max-new-tokens", "24",
                      "--out", str(out / "flores"), *common]):
            if main(argv) != 0:
                return 1
    finally:
        scoring._forward = forward
    (out / f"forwards.{process_state().process_index}").write_text(json.dumps(len(calls)))
    return 0


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1])))
