import type { BlobStore } from './blobs.js';
import type { InferenceClient } from './inference.js';
import type { HubTokens } from './keys.js';
import type { ModelRegistry } from './models.js';
import type { Scheduler } from './scheduler.js';
import type { Store } from './store/types.js';

/** What route handlers work with. */
export interface ServiceContext {
  store: Store;
  blobs: BlobStore;
  models: ModelRegistry;
  scheduler: Scheduler;
  inference: InferenceClient;
  /** Each tenant's Hugging Face token (for the check at job creation; publishing looks it up again). */
  hubTokens: HubTokens;
  maxUploadBytes: number;
  /** False once the service is shutting down (readiness). */
  accepting: () => boolean;
}
