# The integer codes of csrc/fbp_kernels.h, for Cython code and, as enum classes of
# the module fastbp._kernels.codes, for Python. Cython cannot read a header, so the
# member names are listed here; their values come from the header alone.
cdef extern from "fbp_kernels.h" nogil:
    cpdef enum fbp_act:
        FBP_ACT_IDENTITY
        FBP_ACT_SIGMOID
        FBP_ACT_TANH
        FBP_ACT_RELU
        FBP_ACT_LEAKY_RELU
        FBP_ACT_ELU
        FBP_ACT_SOFTPLUS
        FBP_ACT_HARD_SIGMOID
        FBP_ACT_HARD_TANH
        FBP_ACT_SILU
        FBP_ACT_GELU
        FBP_ACT_SOFTMAX
        FBP_ACT_PRELU

    cpdef enum fbp_loss:
        FBP_LOSS_MSE
        FBP_LOSS_SOFTMAX_XENT_INT
        FBP_LOSS_SOFTMAX_XENT_PROB
        FBP_LOSS_SIGMOID_BCE
        FBP_LOSS_SOFTMAX_KL

    cpdef enum fbp_node:
        FBP_NODE_DENSE
        FBP_NODE_ACTIVATION
        FBP_NODE_PRELU
        FBP_NODE_MAXOUT
        FBP_NODE_DROPOUT

    cpdef enum fbp_opt:
        FBP_OPT_SGD
        FBP_OPT_ADAM
        FBP_OPT_RMSPROP
        FBP_OPT_ADAGRAD

    # What a dispatching kernel returns: FBP_OK, or the bit of the group whose code it
    # does not know (the engine ORs them over a call).
    cpdef enum fbp_status:
        FBP_OK
        FBP_ERR_ACTIVATION
        FBP_ERR_LOSS
        FBP_ERR_NODE
        FBP_ERR_OPTIMIZER
