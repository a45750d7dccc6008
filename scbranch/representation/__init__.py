"""AnnData expression ↔ model space, behind one protocol (:class:`Representation`).

- ``_pca.py``: PCA of log-normalized expression (default); decodes with the count decoder when the input
  holds counts, else with the residual decoder.
- ``_scvi.py``: scVI's latent means; decodes through scVI's own (ZI)NB likelihood.
- ``_nb_decoder.py``, ``_residual_decoder.py``: the PCA representation's two decoders.
- ``_library.py``: recovering counts from log-normalized input; per-type library sizes and normalization.
"""

from ._library import CountsInfo, Libraries, counts_info, recover_counts
from ._pca import PCARepresentation
from ._protocol import Decoded, DecoderData, Representation
from ._scvi import SCVIRepresentation

REPRESENTATIONS = {"pca": PCARepresentation, "scvi": SCVIRepresentation}  # scvi-tools imported only when used

__all__ = ["REPRESENTATIONS", "CountsInfo", "Decoded", "DecoderData", "Libraries", "PCARepresentation",
           "Representation", "SCVIRepresentation", "counts_info", "recover_counts"]
