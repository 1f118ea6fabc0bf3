/*
 * sluice.h — umbrella header: includes every public sluice module.
 * See docs/architecture.md for the layers and ownership rules.
 */
#ifndef SLUICE_H
#define SLUICE_H

#include "sluice/common.h"
#include "sluice/bytes.h"
#include "sluice/stream.h"
#include "sluice/sink.h"
#include "sluice/pump.h"
#include "sluice/sha256.h"
#include "sluice/sigv4.h"
#include "sluice/sniff.h"
#include "sluice/io.h"
#include "sluice/reader.h"
#include "sluice/body.h"
#include "sluice/writer.h"
#include "sluice/http.h"
#include "sluice/head.h"
#include "sluice/multipart.h"
#include "sluice/splice.h"
#include "sluice/reply.h"
#include "sluice/s3.h"

#endif
