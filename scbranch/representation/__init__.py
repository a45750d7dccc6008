"""AnnData expression ↔ model space, behind one protocol (:class:`Representation`).

- ``_registry.py``: the representations by name (:func:`register_representation`): construction and loading.
- ``_pca.py``: PCA of log-normalized expression (default); decodes with the count decoder when the input
  holds counts, else with the residual decoder.
- ``_scvi.py``: scVI's latent means; decodes through scVI's own (ZI)NB likelihood.
- ``_nb_decoder.py``, ``_residual_decoder.py``: the PCA representation's two decoders.
- ``_library.py``: per-type library sizes, so synthetic counts are normalized as the input was (counts and
  log-normalization themselves: :mod:`scbranch._normalize`).
"""

from ._library import Libraries
from ._pca import PCARepresentation
from ._protocol import Decoded, DecoderData, Representation
from ._registry import REPRESENTATIONS, get_representation, register_representation
from ._scvi import SCVIRepresentation  # registers itself; scvi-tools is imported only when used

__all__ = ["REPRESENTATIONS", "Decoded", "DecoderData", "Libraries", "PCARepresentation", "Representation",
           "SCVIRepresentation", "get_representation", "register_representation"]
