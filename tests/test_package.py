"""tapelab as a package: importing it changes nothing of the caller's, and it keeps TensorFlow's start-up
chatter off the terminal."""

import json
import subprocess
import sys
from pathlib import Path

from tapelab.core.fer import EMOTIONS

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_importing_the_plotting_modules_keeps_the_callers_matplotlib_backend():
    result = _python("import matplotlib; matplotlib.use('svg'); "
                     "import tapelab.attacks.plots, tapelab.train.curves, tapelab.train.fer; "
                     "import tapelab.train.gradient_flow_plots, tapelab.train.classifier; "
                     "print(matplotlib.get_backend())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "svg"


def test_tensorflow_starts_without_its_chatter_and_real_errors_still_show():
    result = _python("from tapelab.core.quiet import import_tensorflow_quietly; tf = import_tensorflow_quietly(); "
                     "import sys; print(float(tf.reduce_sum(tf.ones(3)))); print('an error of ours', file=sys.stderr)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3.0"
    assert result.stderr.strip() == "an error of ours"


def test_the_wheel_installs_and_runs_from_another_folder(tmp_path):
    """A plain (non-editable) install: one `tapelab` package in site-packages, the shipped model found inside it."""
    import sysconfig

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(tmp_path / "wheels"), str(ROOT)], check=True, timeout=300)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    wheel = next((tmp_path / "wheels").glob("tapelab-*.whl"))
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300)
    # Its dependencies (TensorFlow, OpenCV, ...) come from this environment, added after the new one's own
    # packages; .pth files there (this checkout's editable install) are not run from such a path.
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = sorted(path.name for path in site.iterdir() if path.is_dir() and not path.name.endswith("-info"))
    assert "tapelab" in installed and not {"core", "train", "attacks", "realtime", "scripts"} & set(installed)

    def run(*args):
        return subprocess.run([str(venv / "bin" / "tapelab"), *args], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)

    help_result = run("--help")
    assert help_result.returncode == 0 and "backprop-check" in help_result.stdout
    where = subprocess.run([str(python), "-c", "import tapelab.core.shipped as s; print(s.shipped_model("
                            "'fer2013_emotion'))"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert where.stdout.strip().startswith(str(site / "tapelab" / "models")), where.stderr
    predicted = run("fer", "predict", str(ROOT / "tests" / "fixtures" / "astronaut.png"), "--json")
    assert predicted.returncode == 0, predicted.stderr
    faces = json.loads(predicted.stdout.strip().splitlines()[-1])["faces"]
    assert len(faces) == 1 and faces[0]["label"] in EMOTIONS


def test_a_command_prints_no_tensorflow_start_up_lines():
    script = Path(sys.executable).parent / "tapelab"
    result = subprocess.run([str(script), "backprop-check", "--depths", "2", "--activations", "relu", "--summary"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and "PASS" in result.stdout
    assert result.stderr == ""
