/* models.h — the model zoo's internal table: constructors that live in one
 * file of models/ and are dispatched by kn_model_new (models/vision.c).
 * Written against the public <kiln.h> only. */
#ifndef KILN_MODELS_H
#define KILN_MODELS_H

#include <kiln.h>

/* models/sequence.c */
kn_block *kn__model_transformer_encoder(const kn_model_config *cfg);
kn_block *kn__model_lstm_classifier(const kn_model_config *cfg);

/* Errors go through the public kn_set_error; this returns NULL after it. */
#define KN_MODEL_FAIL(...) (kn_set_error(__VA_ARGS__), (kn_block *)NULL)

#endif
