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


# Activation codes the element-wise kernels compute: all but prelu's, whose learnt
# slopes make it a node of its own (FBP_NODE_PRELU).
ELEMENTWISE_ACTIVATIONS = frozenset(CODES["activation"].values()) - {FBP_ACT_PRELU}
KNOWN = {group: frozenset(table.values()) for group, table in CODES.items()}


def _status_groups(enum):
    """{status bit: the group whose code it reports} for fbp_status's members:
    FBP_ERR_LOSS -> "loss"."""
    groups = {}
    for member, value in enum.__members__.items():
        if value != FBP_OK:
            group = member[len("FBP_ERR_"):].lower()
            if group not in CODES:
                raise ImportError(f"{member} names no group of codes; expected FBP_ERR_ and one "
                                  f"of {', '.join(map(str.upper, CODES))}")
            groups[int(value)] = group
    return groups


STATUS_GROUPS = _status_groups(fbp_status)


def unknown_code(str group, code, str what):
    """The ValueError for a code that is not one of group's."""
    known = ", ".join(f"{name}={value}" for name, value in CODES[group].items())
    return ValueError(f"{what} is {code!r}, which is none of the {group} codes of "
                      f"csrc/fbp_kernels.h ({PREFIXES[group]}*); expected one of {known}")


def check_code(str group, code, str what):
    """Raise unknown_code unless code is one of group's."""
    if code not in KNOWN[group]:
        raise unknown_code(group, code, what)


def check_activation(code, str what):
    """Raise unless the element-wise kernels compute activation code `code`."""
    if code in ELEMENTWISE_ACTIVATIONS:
        return
    if code == FBP_ACT_PRELU:
        raise ValueError(f"{what} is {code} (prelu), which no element-wise kernel computes: "
                         "its slopes are learnt in a node of its own (FBP_NODE_PRELU)")
    raise unknown_code("activation", code, what)


def status_error(int status, str where):
    """The ValueError for a nonzero fbp_status returned by the kernels."""
    groups = [group for bit, group in STATUS_GROUPS.items() if status & bit]
    return ValueError(f"{where}: the C kernels met an unknown {' and '.join(groups)} code "
                      f"(fbp_status {status}) and computed nothing for it; the codes are "
                      "checked before the kernels run, so this is a bug in that check")
