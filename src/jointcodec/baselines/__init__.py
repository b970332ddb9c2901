"""Classic-codec baselines on one protocol (the paper's rate-accuracy comparison).

``cache``: codec outputs cached on disk; ``receiver``: the classifier of decoded images, trained by the
joint model's recipe; ``protocol``: one (codec, setting) point and sweeps of them; ``compare``: the
table, the plot and the BD-style summary against jointcodec; ``paper``: the paper's reference points.
"""
