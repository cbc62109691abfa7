"""Hand-off consumers (docs/cni.md, mode HandOff): the node's plan handed to a CNI's daemon."""
