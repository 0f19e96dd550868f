"""Building blocks of tapelab: activations, models, data, gradient capture and backprop."""
