"""The command-line options of your own data (`tfnas search --dataset images:DIR` ...).

Kept free of TensorFlow imports: the CLI builds its parser before it loads
anything heavy.
"""

#: The options' destinations; a search records them with its arguments.
DESTINATIONS = ("image_size", "label_column", "text_column", "text_encoding")


def add_arguments(parser):
    """Adds the options of images:, csv: and npz: datasets to `parser`."""
    group = parser.add_argument_group(
        "your own data",
        "--dataset images:DIR (one subfolder of images per class), csv:PATH (a table "
        "with --label-column) or npz:PATH (arrays x and y); split 60/20/20 by --seed "
        "(the search never reads the test split) and recorded in the project's data.json")
    group.add_argument("--image-size", type=int, nargs=2, default=None,
                       metavar=("HEIGHT", "WIDTH"),
                       help="images: size the images are resized to (default: 64 64)")
    group.add_argument("--label-column", default=None, metavar="NAME",
                       help="csv: the column of class labels")
    group.add_argument("--text-column", action="append", default=None, metavar="NAME",
                       help="csv: a column of free text, repeatable (other columns are "
                            "numeric or categorical)")
    group.add_argument("--text-encoding", default=None,
                       choices=("tf_idf", "multi_hot", "count", "int"),
                       help="csv: how text becomes features: bags of words (default "
                            "tf_idf; for the mlp space) or int token ids (for a sequence "
                            "space; the text column must be the only feature)")


def options(args):
    """The keyword arguments of `tfnas.load_data` given by `args`."""
    return {"image_size": args.image_size, "label_column": args.label_column,
            "text_columns": args.text_column, "text_encoding": args.text_encoding}
