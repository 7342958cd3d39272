"""Facts from the paper, in one place.

Y. LeCun, B. Boser, J. S. Denker, D. Henderson, R. E. Howard, W. Hubbard, L. D. Jackel,
"Backpropagation Applied to Handwritten Zip Code Recognition", Neural Computation 1(4):541-551, 1989.
Figures marked "reproduction" come from the best-known PyTorch reproduction of the paper.
"""

CITATION = (
    "Y. LeCun et al., Backpropagation Applied to Handwritten Zip Code Recognition, "
    "Neural Computation 1(4):541-551, 1989"
)

# Data (section 2): 9,298 digits from U.S. mail, 16x16 grayscale scaled to [-1, 1].
N_TRAIN = 7291
N_TEST = 2007
IMAGE_SIZE = 16
N_CLASSES = 10

# Network (section 5.1, figure 3).
H1_PLANES, H1_SIZE = 12, 8
H2_PLANES, H2_SIZE = 12, 4
H2_INPUTS_PER_PLANE = 8   # each H2 plane sees 8 of the 12 H1 planes
H3_UNITS = 30
KERNEL = 5
STRIDE = 2
PAD = 2
PAD_VALUE = -1.0          # the background value of the scaled images
INIT_SCALE = 2.4          # weights ~ U(-2.4/F, 2.4/F), F = fan-in

UNITS = 1256
CONNECTIONS = 64660
PARAMETERS = 9760

# Training (section 5.2): online updates, examples in constant order, 23 passes.
PASSES = 23

# Results after 23 passes (section 5.3).
TRAIN_ERROR = 0.0014      # 10 misses
TEST_ERROR = 0.0500       # 102 misses
TRAIN_MISSES = 10
TEST_MISSES = 102
TRAIN_MSE = 2.5e-3
TEST_MSE = 1.8e-2

# The best-known reproduction's recipe and figures (MNIST approximation, lr 0.03, seed 1337).
REPRO_LR = 0.03
REPRO_SEED = 1337
REPRO_TRAIN_ERROR = 0.0062
REPRO_TEST_ERROR = 0.0409
