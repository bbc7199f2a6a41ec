"""What every benchmark writes: a Markdown table with the machine it ran on."""

import os
import platform

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def machine():
    """One line naming the machine and the versions that matter."""
    import keras
    import tensorflow as tf

    return (f"Machine: {platform.machine()}{processor_model()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, TensorFlow {tf.__version__}, "
            f"Keras {keras.__version__}.")


def processor_model():
    """The processor's model name from /proc/cpuinfo after a comma, or an
    empty string where there is none: timings differ several times between
    processors of one architecture."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return ", " + line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def write_table(path, title, description, rows):
    """Writes `rows` (Markdown table lines) under a title and prints them."""
    text = f"# {title}\n\n{description}\n{machine()}\n\n" + "\n".join(rows) + "\n"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as file:
        file.write(text)
    print(text)
