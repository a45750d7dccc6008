"""Cell-type hierarchies: the Hierarchy type, its readers/writers behind one resolver (``resolve_hierarchy``: every
form ``fit(hierarchy=...)`` takes), and branch times from data."""

from ._data import SeparationTest, calibrate_times, data_topology, n_ref_for
from ._resolve import resolve_hierarchy
from ._tree import Hierarchy, Node

__all__ = ["Hierarchy", "Node", "SeparationTest", "calibrate_times", "data_topology", "n_ref_for",
           "resolve_hierarchy"]
