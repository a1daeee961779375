/* kiln/data.h — datasets, per-sample transforms and the data loader; included
 * by kiln.h. A dataset maps an index to a sample (x, y); a loader batches
 * samples, in a seeded order, on worker threads with a bounded prefetch
 * queue; batches are bitwise the same whatever the worker count. */
#ifndef KILN_DATA_H
#define KILN_DATA_H

/* ================================================================ datasets
 * kn_dataset_get returns new references. x (and y) may share storage with
 * the dataset: treat them as read-only. get may be called from several
 * threads at once (the loader's workers), so a user dataset's get must be
 * thread-safe. Built-in image datasets give u8 images in (C, H, W) layout
 * and i64 labels as 0-d tensors; add a to-float transform to get f32. */
typedef struct kn_dataset kn_dataset;

/* A user dataset: get(user, index, &x, &y) for 0 <= index < len, returning
 * KN_OK with new references (y may be NULL for every sample) or an error
 * status; the message of a failed kiln call it made is passed on, else one
 * naming the sample is written. release(user) runs on free. */
typedef kn_status (*kn_dataset_get_fn)(void *user, int64_t index, kn_tensor **x, kn_tensor **y);
kn_dataset *kn_dataset_new(int64_t len, kn_dataset_get_fn get, void (*release)(void *user),
                           void *user);
/* Samples are x[i] and y[i] along the first dim (y may be NULL). Takes
 * references to x and y. */
kn_dataset *kn_dataset_tensors(kn_tensor *x, kn_tensor *y);
/* MNIST or Fashion-MNIST from IDX files in dir: split "train" reads
 * train-images-idx3-ubyte and train-labels-idx1-ubyte, "test" the t10k-
 * ones; each may also be named with a .gz suffix (gzip needs kiln built with
 * zlib: kn_dataset_gzip_supported()). x is u8 (1, rows, cols), y i64. */
kn_dataset *kn_dataset_mnist(const char *dir, const char *split);
/* CIFAR-10 binary version from dir (or dir/cifar-10-batches-bin):
 * data_batch_1..5.bin when train, else test_batch.bin; 3073-byte records.
 * x is u8 (3, 32, 32), y i64 in [0, 10). */
kn_dataset *kn_dataset_cifar10(const char *dir, bool train);
/* CIFAR-100 binary version from dir (or dir/cifar-100-binary): train.bin or
 * test.bin, 3074-byte records; y is the fine label in [0, 100) when
 * fine_labels, else the coarse one in [0, 20). */
kn_dataset *kn_dataset_cifar100(const char *dir, bool train, bool fine_labels);
/* A CSV table of numbers (comma-separated, one row a line, optional header
 * line): x is f32 (n_features,) — every column but the label column — and y
 * the i64 label from column label_column (0-based), or y is NULL when
 * label_column is -1. Errors name the line and column of a bad field. */
kn_dataset *kn_dataset_csv(const char *path, int label_column, bool has_header);
void kn_dataset_free(kn_dataset *ds);
int64_t kn_dataset_len(const kn_dataset *ds);
kn_status kn_dataset_get(kn_dataset *ds, int64_t index, kn_tensor **x, kn_tensor **y);
/* True when kiln was built with zlib (so .gz IDX files can be read). */
bool kn_dataset_gzip_supported(void);

/* ================================================================ transforms
 * A pipeline of per-sample steps on images of (C, H, W) or (H, W), applied
 * in the order added. Random steps draw from Philox keyed by the seed given
 * to kn_transform_apply (the loader derives it from (seed, epoch, index)),
 * so the result does not depend on threads. Geometry follows torchvision. */
typedef struct kn_transform kn_transform;
kn_transform *kn_transform_new(void);
void kn_transform_free(kn_transform *t);
/* u8 -> f32 divided by 255 (torchvision ToTensor, for images already CHW). */
kn_status kn_transform_add_to_float(kn_transform *t);
/* (x - mean[c]) / std[c] per channel; f32 input with n_channels channels. */
kn_status kn_transform_add_normalize(kn_transform *t, int n_channels, const float *mean,
                                     const float *std);
/* Zero-pads each side by `padding`, then crops height x width at a random
 * place (torchvision RandomCrop). */
kn_status kn_transform_add_random_crop(kn_transform *t, int64_t height, int64_t width,
                                       int64_t padding);
/* Mirrors the width axis with probability p. */
kn_status kn_transform_add_hflip(kn_transform *t, double p);
/* Crops a random area fraction in [scale_lo, scale_hi] with aspect ratio
 * (w/h) in [ratio_lo, ratio_hi] (log-uniform), then resizes to height x
 * width, bilinear with half-pixel centers (torchvision RandomResizedCrop;
 * usual values scale 0.08..1, ratio 3/4..4/3). u8 or f32 images. */
kn_status kn_transform_add_random_resized_crop(kn_transform *t, int64_t height, int64_t width,
                                               double scale_lo, double scale_hi, double ratio_lo,
                                               double ratio_hi);
int kn_transform_len(const kn_transform *t);
/* A new tensor: x through every step (x itself is not changed). */
kn_tensor *kn_transform_apply(const kn_transform *t, kn_tensor *x, uint64_t seed);

/* ================================================================ loader
 * Batches of batch_size samples stacked on a new first axis (labels: (B,)).
 * The order of an epoch comes from (seed, epoch) alone (a Philox shuffle, or
 * 0..n-1 without shuffle), each batch's content from its position alone, so
 * batches are bitwise equal for any n_workers. n_workers 0 loads in the
 * calling thread; otherwise workers fill at most `prefetch` batches ahead
 * (0: two per worker) into a bounded queue, delivered in order. The dataset
 * and transform are borrowed and must outlive the loader. */
typedef struct kn_loader kn_loader;
kn_loader *kn_loader_new(kn_dataset *ds, int64_t batch_size, bool shuffle, bool drop_last,
                         uint64_t seed, int n_workers, int prefetch);
/* Sets the per-sample transform (NULL: none); only before the first batch
 * of an epoch (after new or reset), else KN_ERR_STATE. */
kn_status kn_loader_set_transform(kn_loader *ld, const kn_transform *t);
/* Next batch: KN_OK with new references *x and *y (*y NULL for an unlabeled
 * dataset); at the end of the epoch KN_OK with *x = *y = NULL. A failed
 * sample returns its error (naming the sample), and so does every later call
 * until kn_loader_reset. */
kn_status kn_loader_next(kn_loader *ld, kn_tensor **x, kn_tensor **y);
/* Starts epoch `epoch` (its order and transforms), dropping any batches
 * prefetched for the current one. kn_loader_new starts epoch 0. */
kn_status kn_loader_reset(kn_loader *ld, uint64_t epoch);
int64_t kn_loader_len(const kn_loader *ld); /* batches per epoch */
uint64_t kn_loader_epoch(const kn_loader *ld);
/* Stops and joins the workers, even mid-epoch, and frees the batches left. */
void kn_loader_free(kn_loader *ld);

#endif
