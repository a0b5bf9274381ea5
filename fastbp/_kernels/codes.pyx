# cython: language_level=3
"""Name -> code tables derived from the enums of csrc/fbp_kernels.h (see codes.pxd).

CODES[group][name] is the value of the C enum member PREFIXES[group] + NAME:
CODES["activation"]["gelu"] is FBP_ACT_GELU. They are not written out a second
time: each table is read off its enum class. fastbp/backends/__init__.py checks
them against the Python registries when the extension loads.
"""

# group -> (the enum class Cython made from the header, its members' common prefix)
ENUMS = {
    "activation": (fbp_act, "FBP_ACT_"),
    "loss": (fbp_loss, "FBP_LOSS_"),
    "optimizer": (fbp_opt, "FBP_OPT_"),
    "node": (fbp_node, "FBP_NODE_"),
}


def _table(enum, prefix):
    """{name: code} for the members of enum: each member's name without prefix,
    lower-cased (FBP_ACT_LEAKY_RELU -> "leaky_relu")."""
    table = {}
    for member, value in enum.__members__.items():
        if not member.startswith(prefix):
            raise ImportError(f"{member} in {enum.__name__} does not start with {prefix}; "
                              "rename it in csrc/fbp_kernels.h and codes.pxd")
        table[member[len(prefix):].lower()] = int(value)
    return table


CODES = {group: _table(enum, prefix) for group, (enum, prefix) in ENUMS.items()}
PREFIXES = {group: prefix for group, (_, prefix) in ENUMS.items()}


def c_name(str group, str name):
    """The C enum member for a name of a group: c_name("activation", "gelu") is
    "FBP_ACT_GELU"."""
    return PREFIXES[group] + name.upper()
