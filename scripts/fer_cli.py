"""`tapelab fer train|eval|predict`: the facial-emotion classifier on the command line."""

from pathlib import Path

from tapelab.core.config import spec_defaults, spec_from_args
from tapelab.core.errors import ConfigError, TapelabError
from tapelab.core.io import RunFolder, refuse_to_replace
from tapelab.core.lite import WEIGHT_FORMATS
from tapelab.scripts.options import add_training_options, training_setup
from tapelab.train.classifier import FER2013_CNN, ClassifierSpec


def cmd_fer_train(args) -> int:
    from tapelab.train.fer import MODEL_NAME, train_emotion_model

    strategy = training_setup(args)
    spec = spec_from_args(ClassifierSpec, args)
    model_path = args.out / f"{MODEL_NAME}.h5"
    if args.out.resolve() == args.results.resolve():
        raise ConfigError("--out and --results name the same folder, where the model's JSON and the training "
                          "report would overwrite each other; give them different folders")
    refuse_to_replace(model_path, args.overwrite)
    with RunFolder(args.results, f"{MODEL_NAME}.json", args.overwrite) as run:
        metrics = train_emotion_model(spec, run.staging, args.command, models_dir=args.out, data_dir=args.data_dir,
                                      progress=not args.quiet, strategy=strategy)
    print(f"{model_path}: validation accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}; "
          f"`tapelab ship {model_path}` makes it the model the realtime program uses")
    return 0


def cmd_fer_split(args) -> int:
    from tapelab.core.fer import validation_record
    from tapelab.core.io import save_json

    with RunFolder(args.out, "validation_split.json", args.overwrite) as run:
        record = validation_record(args.data)
        save_json(run.staging / "validation_split.json", {**record, "command": args.command})
    print(f"{args.out / 'validation_split.json'}: {len(record['positions'])} validation faces "
          f"({', '.join(f'{name} {count}' for name, count in record['per_class'].items())})")
    return 0


def cmd_fer_ensemble(args) -> int:
    from tapelab.core.io import load_json
    from tapelab.train.fer import MODEL_NAME, ensemble_emotion_models, model_nets

    model_path = args.out / f"{MODEL_NAME}.h5"
    refuse_to_replace(model_path, args.overwrite)
    metrics = ensemble_emotion_models(args.members, args.out, args.command, data_dir=args.data_dir,
                                      mirror_average=not args.no_mirror)
    nets = model_nets(load_json(model_path.with_suffix(".json")))  # an ensemble given as a member adds its nets
    print(f"{model_path}: {len(nets['members'])} nets, {nets['passes']} net passes a call, "
          f"validation accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}")
    return 0


def cmd_fer_choose(args) -> int:
    from tapelab.train.fer_choice import ShippingBudget, choose_emotion_model, write_choice

    with RunFolder(args.out, "choice.json", args.overwrite) as run:
        budget = ShippingBudget(args.latency_ms, args.megabytes, args.training_hours)
        choice = choose_emotion_model(args.models, budget, calls=args.calls)
        write_choice(choice, run.staging, args.command)
    chosen = next(c for c in choice["candidates"] if c["model"] == choice["chosen"])
    print(f"chosen: {chosen['model']} (validation accuracy {chosen['accuracy']:.4f}, one face "
          f"{chosen['latency_p50_ms']:.2f} ms, {chosen['megabytes']:.1f} MB); table: {args.out / 'choice.md'}")
    return 0


def cmd_fer_eval(args) -> int:
    from tapelab.train.fer import (
        evaluate_split,
        evaluation_name,
        load_emotion_model,
        record_in_description,
        recorded_scores,
        write_evaluation,
    )

    name = evaluation_name(args.split, args.tta, args.weights)
    with RunFolder(args.out, f"{name}.json", args.overwrite) as run:  # proven writable before any work
        model = load_emotion_model(args.model)
        metrics = evaluate_split(model, args.data, args.split, skip_bad=args.skip_bad, tta=args.tta,
                                 weights=args.weights)
        report = write_evaluation(metrics, run.staging, args.command)
        text = report.read_text()
    if args.record:
        record_in_description(args.model, f"metrics.{name.removeprefix('eval_')}",
                              recorded_scores(metrics, args.command))
    print(text)
    return 0


def cmd_fer_predict(args) -> int:
    """One line per image as soon as it is done; with --json every stdout line is JSON and notes go to stderr."""
    import json
    import sys

    from tapelab.train.fer import load_emotion_model, predict_images

    skipped = []
    for result in predict_images(load_emotion_model(args.model), args.images, skip_bad=args.skip_bad):
        if "error" in result:
            skipped.append(result["path"])
            print(f"tapelab fer predict: skipped {result['error']}", file=sys.stderr, flush=True)
        elif args.json:
            print(json.dumps(result), flush=True)
        elif not result["faces"]:
            print(f"{result['path']}: no face found", flush=True)
        else:
            for face in result["faces"]:
                where = "whole image" if face["box"] is None else "box x={} y={} w={} h={}".format(*face["box"])
                print(f"{result['path']}: {face['label']} {face['confidence']:.2f} ({where})", flush=True)
    if skipped:
        print(f"tapelab fer predict: {len(skipped)} of {len(args.images)} images skipped (unreadable)",
              file=sys.stderr)
    if len(skipped) == len(args.images):
        raise TapelabError(f"none of the {len(args.images)} images could be read; give JPEG or PNG files")
    return 0


def add_fer_parser(commands) -> None:
    """Add `fer` and its actions to the top-level subcommands."""
    fer = commands.add_parser("fer", help="the FER2013 facial-emotion classifier: train, ensemble, eval, predict",
                              description="Train, evaluate and use the 7-class facial-emotion classifier.")
    fer_commands = fer.add_subparsers(dest="fer_command", required=True, metavar="ACTION")
    fer_train = fer_commands.add_parser("train", help="train with the tape loop and export .h5 + .json",
                                        description="Train the emotion CNN on FER2013 Training less the "
                                        "validation faces, keep the epoch that is best on those, export "
                                        "fer2013_emotion.h5 and a JSON with labels, input, preprocessing and "
                                        "metrics into --out (`tapelab ship` then makes it the shipped model).")
    fer_train.add_argument("--data-dir", type=Path, required=True,
                           help="FER2013 as Kaggle folders (train/EMOTION/*.jpg, test/...) or fer2013.csv")
    add_training_options(fer_train, out="runs/fer", results="runs/fer")
    fer_train.set_defaults(run=cmd_fer_train, **spec_defaults(FER2013_CNN))
    fer_split = fer_commands.add_parser("split", help="record the validation faces carved from Training",
                                        description="Write validation_split.json: the seed, the fraction, and "
                                        "each validation face's position in Training and its file, the faces "
                                        "every choice (epoch, recipe, ensemble) is made on.")
    fer_split.add_argument("--data", type=Path, required=True, help="FER2013 folder (Kaggle folders or CSV)")
    fer_split.add_argument("--out", type=Path, default=Path("runs/fer_split"), help="folder for the record")
    fer_split.add_argument("--overwrite", action="store_true", help="replace a record already in --out")
    fer_split.set_defaults(run=cmd_fer_split)
    fer_ensemble = fer_commands.add_parser("ensemble", help="average trained emotion models into one .h5",
                                           description="Average the outputs of emotion models trained in "
                                           "separate runs into one plain-Keras fer2013_emotion.h5 with its JSON, "
                                           "scored on the validation faces.")
    fer_ensemble.add_argument("members", type=Path, nargs="+",
                              help="the members' .h5 files: trained models, or ensembles whose nets join one by one")
    fer_ensemble.add_argument("--data-dir", type=Path, required=True, help="FER2013, for the validation score")
    fer_ensemble.add_argument("--out", type=Path, default=Path("runs/fer_ensemble"), help="folder for the model")
    fer_ensemble.add_argument("--no-mirror", action="store_true",
                              help="average the members' nets over each face alone, not also its mirror image: "
                                   "half the passes per call, for a latency budget")
    fer_ensemble.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    fer_ensemble.set_defaults(run=cmd_fer_ensemble)
    fer_choose = fer_commands.add_parser("choose", help="pick the model to ship on the validation faces",
                                         description="Measure each candidate's one-face LiteRT latency side by "
                                         "side, read its validation scores, and choose the most accurate one within "
                                         "the latency and size budgets (choice.md, choice.json); PublicTest is not "
                                         "read.")
    fer_choose.add_argument("models", type=Path, nargs="+", help="candidate .h5 files (their .json beside them)")
    fer_choose.add_argument("--latency-ms", type=float, default=3.0, help="budget: p50 of one call on one face")
    fer_choose.add_argument("--megabytes", type=float, default=32.0, help="budget: size of the .h5 file")
    fer_choose.add_argument("--training-hours", type=float, default=4.0,
                            help="budget: machine time of all the training runs behind the model, each counted once")
    fer_choose.add_argument("--calls", type=int, default=200, help="timed calls per candidate and round")
    fer_choose.add_argument("--out", type=Path, default=Path("runs/fer_choice"), help="folder for the table")
    fer_choose.add_argument("--overwrite", action="store_true", help="replace a table already in --out")
    fer_choose.set_defaults(run=cmd_fer_choose)
    fer_eval = fer_commands.add_parser("eval", help="accuracy, per-class scores, confusion matrix",
                                       description="Evaluate an emotion model on a FER2013 split: accuracy, "
                                       "per-class precision, recall and F1, macro-F1, confusion-matrix PNG.")
    fer_eval.add_argument("--model", type=Path, help="emotion .h5 (default: the shipped model)")
    fer_eval.add_argument("--data", type=Path, required=True, help="FER2013 folder (Kaggle folders or CSV)")
    fer_eval.add_argument("--split", choices=["train", "validation", "test", "private"], default="test",
                          help="train and validation = the two parts of Training, test = PublicTest, "
                          "private = PrivateTest (CSV or a private/ folder)")
    fer_eval.add_argument("--weights", choices=WEIGHT_FORMATS, default="int8",
                          help="kernels LiteRT runs: int8 (as fer predict and the realtime program do) or float32")
    fer_eval.add_argument("--skip-bad", action="store_true", help="skip malformed rows or images, and count them")
    fer_eval.add_argument("--tta", action="store_true",
                          help="average each face over its centre and corner crops and their mirror images "
                          "(10 model calls per face; the report is eval_SPLIT_tta.md)")
    fer_eval.add_argument("--out", type=Path, default=Path("runs/fer_eval"), help="folder for the report")
    fer_eval.add_argument("--overwrite", action="store_true", help="replace this split's report already in --out")
    fer_eval.add_argument("--record", action="store_true",
                          help="also write the scores, recall per class and confusion matrix into the JSON beside "
                          "the model, under metrics.SPLIT")
    fer_eval.set_defaults(run=cmd_fer_eval)
    fer_predict = fer_commands.add_parser("predict", help="classify the faces in images",
                                          description="Find the faces in each image (a 48x48 image is taken as "
                                          "a face) and print label and confidence per face.")
    fer_predict.add_argument("images", type=Path, nargs="+", help="image files")
    fer_predict.add_argument("--model", type=Path, help="emotion .h5 (default: the shipped model)")
    fer_predict.add_argument("--json", action="store_true",
                             help="one JSON line per image on stdout (notes go to stderr)")
    fer_predict.add_argument("--skip-bad", action="store_true",
                             help="skip unreadable images with a note on stderr, and count them (default: stop at "
                             "the first with an error, after printing the images before it)")
    fer_predict.set_defaults(run=cmd_fer_predict)
