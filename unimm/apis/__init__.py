"""What the command lines in tools/ call: each tool parses its arguments and calls one
function of this package. Modules are imported by name (``unimm.apis.train``), so that a
tool loads only what it runs."""
