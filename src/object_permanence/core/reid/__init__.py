"""Learned appearance embeddings for re-identification (issue 9, item 3).

``crops`` cuts the boxes of an image into one batch, ``model`` is the small CNN, ``embedder`` the
drop-in alternative to the colour-histogram embedder, ``dataset`` the identity crops of the
simulated world and the query/gallery protocol, ``retrieval`` its scores, ``training`` the loss and
loop. Only ``model``, ``embedder`` and ``training`` need torch, and they import it themselves.
"""
