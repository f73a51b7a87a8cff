"""The duplicate probability of one question pair, from a trained or imported RoBERTa classifier.

    python scripts/predict.py runs/qqp-*/lora/model.keras "How do I learn Python?" "How can I learn Python?"
    python scripts/predict.py hf-roberta-qqp/ "Is Paris nice?" "Is Paris a nice city?"
    python scripts/predict.py runs/qqp-*/full/model.keras "q1" "q2" --adapter runs/qqp-*/lora/adapter.safetensors
    python scripts/predict.py hf-roberta-base/ "q1" "q2" --adapter peft-qqp-adapter/
    python scripts/predict.py runs/qqp-*/full/model.keras "q1" "q2" --quantize int8

MODEL: a `.keras` file (Keras's safe mode), a Hugging Face folder (`save_pretrained`) or a
keras-hub preset folder. --adapter puts a LoRA adapter on it first: our `adapter.safetensors`
(refused unless made for this very base) or a PEFT adapter folder. --quantize int8 stores the
backbone's frozen projections in int8 first; an adapter trained on an int8 base goes on after.
Prints the probability that the two questions are duplicates (softmax of the logits, class 1).
"""

import argparse
from pathlib import Path

from project.backend import add_backend_argument
from project.cli import Parser, flag_names
from project.errors import InputError, run_cli
from project.settings import quantize_mode


def parse_args(argv=None):
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model", type=Path,
                   help="a .keras file, a Hugging Face checkpoint folder or a keras-hub preset")
    p.add_argument("question1", help="the first question")
    p.add_argument("question2", help="the second question")
    p.add_argument("--adapter", type=Path, default=None,
                   help="a LoRA adapter: adapter.safetensors (ours) or a PEFT adapter folder")
    p.add_argument("--quantize", default=None, metavar="MODE",
                   help="the backbone's frozen projections in int8 (int8 inference)")
    add_backend_argument(p)
    args = p.parse_args(argv)
    quantize_mode(args.quantize)
    for name in ("question1", "question2"):
        if not getattr(args, name).strip():
            raise InputError(f"{name} is empty: give two non-empty questions")
    if not args.model.exists():
        raise InputError(f"{args.model}: no such model file or folder")
    if args.adapter is not None and not args.adapter.exists():
        raise InputError(f"--adapter {args.adapter}: no such file or folder")
    return args


@flag_names
def main(argv=None) -> int:
    args = parse_args(argv)
    from project.backend import select_backend

    backend = select_backend(["--backend", args.backend])  # before keras is imported
    import pandas as pd
    from keras import ops

    from project.data.qqp_length import tokenize_pairs
    from project.interop import load_classifier
    from project.training.devices import check_quantize_support
    from project.training.metrics import positive_scores

    check_quantize_support(args.quantize, backend)
    model = load_classifier(args.model, adapter=args.adapter, quantize=args.quantize)
    frame = pd.DataFrame({"question1": [args.question1], "question2": [args.question2]})
    logits = ops.convert_to_numpy(model(tokenize_pairs(model.preprocessor, frame)))
    print(f"duplicate probability {float(positive_scores(logits)[0]):.4f}")
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
