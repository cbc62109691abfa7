"""F5 BIG-IP driver through AS3 declarations (tested against F5's published schema only)."""
