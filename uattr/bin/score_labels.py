"""Score a label attribute (language, emotion, …): its classifier on extracted embeddings against utt2<label>.

The classifier is the one the attribute's loss trained (`UnifiedEncoder.classify` applies the same), run on the
attribute's table from `uattr extract`, so no audio is encoded again. Every utterance of --labels needs an
embedding; embeddings without a label are left out. Accuracy, balanced accuracy (the mean per-class recall) and
macro F1 are in percent, the last two over the classes present in --labels; a label the classifier does not know
counts as an error (with a warning). --per-class adds each class's accuracy (its recall) as a row of its own.

--json prints {"accuracy", "balanced_accuracy", "macro_f1", "n_utterances", "n_classes"} (+ "per_class": {label:
accuracy and count} with --per-class); --out writes it with a "meta" entry for `uattr results`; --predictions writes "<utt> <label> <predicted> <posterior>" lines.

Example:
  uattr score-labels --model exp/joint --attribute language --emb exp/joint/emb/language/test/emb.scp \\
      --labels data/test/utt2lang --out exp/joint/scores/language_test/metrics.json
"""

from __future__ import annotations

import argparse
import json

from uattr.scoring.results import add_metrics_output_arguments, write_metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True,
        help="experiment dir (exp/<tag>), model dir (save_pretrained), or a model's Hub id (org/name)",
    )
    parser.add_argument("--attribute", required=True, help="the label attribute to score, e.g. language")
    parser.add_argument("--emb", required=True, help="its embeddings (emb.scp of uattr extract)")
    parser.add_argument("--labels", required=True, help="'<utt> <label>' lines, e.g. data/test/utt2lang")
    parser.add_argument("--per-class", action="store_true", help="also score each class on its own")
    parser.add_argument("--predictions", help="write each utterance's label, prediction and its posterior here")
    add_metrics_output_arguments(parser)


def main(args: argparse.Namespace) -> None:
    from uattr.extract import resolve_model_dir
    from uattr.model import UnifiedEncoder
    from uattr.scoring.classification import predict, score_predictions, write_predictions

    model_dir = resolve_model_dir(args.model)
    predictions = predict(UnifiedEncoder.from_pretrained(model_dir), args.attribute, args.emb, args.labels)
    metrics = score_predictions(predictions, per_class=args.per_class)
    if args.predictions:
        write_predictions(args.predictions, predictions)
    if args.out:
        write_metrics(args.out, metrics, "classification", args, attribute=args.attribute, model=str(model_dir),
                      emb=args.emb, labels=args.labels)
    if args.json:
        print(json.dumps(metrics))
        return
    print(f"{args.attribute}: accuracy {metrics['accuracy']:.2f}%, balanced accuracy "
          f"{metrics['balanced_accuracy']:.2f}%, macro F1 {metrics['macro_f1']:.2f}% "
          f"({metrics['n_utterances']} utterances, {metrics['n_classes']} classes)")
    for label, values in metrics.get("per_class", {}).items():
        print(f"  {label}: accuracy {values['accuracy']:.2f}% ({values['n_utterances']})")
