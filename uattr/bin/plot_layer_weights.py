"""Plot every attribute branch's layer-mixing weights side by side (the paper's Figure 2).

The weights come from a saved model (--model: UnifiedEncoder.layer_weights()) or --weights, a JSON file of
the shape {attr: {"layers": [int...], "weights": [float...]}}. x = layer index, one bar per attribute at each layer.
--json-out saves the weights in that JSON shape; with neither --out nor --json-out the JSON is printed.

Example:
  uattr plot-layer-weights --model exp/joint/model --out exp/joint/layer_weights.png
"""

from __future__ import annotations

import argparse
import json

from uattr.fileio import atomic_write
from uattr.scoring.plots import image_format, plot_layer_weights, read_layer_weights, validate_layer_weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model", help="model dir (written by save_pretrained), an experiment dir with model/, or a model's Hub id"
    )
    source.add_argument("--weights", metavar="JSON", help="layer-weight JSON file (as --json-out writes)")
    parser.add_argument("--out", help="image file (.png, .pdf, .svg)")
    parser.add_argument("--json-out", help="write the weights as JSON")
    parser.add_argument("--title", default="", help="figure title")


def model_layer_weights(model_dir: str) -> dict[str, dict[str, list]]:
    """The weights of a saved model (imported lazily: torch and the model code load only when needed)."""
    from uattr.extract import resolve_model_dir
    from uattr.model import UnifiedEncoder

    model = UnifiedEncoder.from_pretrained(resolve_model_dir(model_dir))
    return validate_layer_weights(model.layer_weights(), f"{model_dir} (model)")


def main(args: argparse.Namespace) -> None:
    if args.out:
        image_format(args.out)
    weights = model_layer_weights(args.model) if args.model else read_layer_weights(args.weights)
    text = json.dumps(weights, indent=2, ensure_ascii=False) + "\n"
    if args.json_out:
        with atomic_write(args.json_out) as handle:
            handle.write(text)
    if args.out:
        plot_layer_weights(weights, args.out, title=args.title)
    if not args.out and not args.json_out:
        print(text, end="")
