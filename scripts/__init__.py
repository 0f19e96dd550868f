"""Command-line entry points; each parses arguments and calls one library function.

TensorFlow's C++ start-up chatter (oneDNN, CUDA drivers, CPU features) would hide our own output: it is imported
here, with that chatter dropped, before any entry point imports it; errors still show.
"""

from tapelab.core.quiet import import_tensorflow_quietly

import_tensorflow_quietly()
