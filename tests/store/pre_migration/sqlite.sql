-- The schema winnow created on sqlite before migrations (main at 41e89f3, SQLModel create_all).
-- Frozen here: tests build a pre-migration database from it, whatever the models become.
CREATE TABLE function (
	id VARCHAR NOT NULL,
	name VARCHAR NOT NULL,
	backbone VARCHAR NOT NULL,
	created_at DATETIME NOT NULL,
	deployed_version INTEGER,
	pinned BOOLEAN NOT NULL,
	annotation_counter INTEGER NOT NULL,
	capture_policy JSON,
	PRIMARY KEY (id)
);

CREATE INDEX ix_function_name ON function (name);

CREATE TABLE apikey (
	id VARCHAR NOT NULL,
	name VARCHAR,
	function_id VARCHAR,
	scopes JSON NOT NULL,
	secret_hash VARCHAR NOT NULL,
	rate_limit_per_minute INTEGER,
	created_at DATETIME NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(function_id) REFERENCES function (id) ON DELETE CASCADE
);

CREATE INDEX ix_apikey_function_id ON apikey (function_id);

CREATE TABLE label (
	id VARCHAR NOT NULL,
	function_id VARCHAR NOT NULL,
	name VARCHAR NOT NULL,
	description VARCHAR,
	created_at DATETIME NOT NULL,
	PRIMARY KEY (id),
	UNIQUE (function_id, name),
	FOREIGN KEY(function_id) REFERENCES function (id) ON DELETE CASCADE
);

CREATE INDEX ix_label_function_id ON label (function_id);

CREATE TABLE modelversion (
	id INTEGER NOT NULL,
	function_id VARCHAR NOT NULL,
	version INTEGER NOT NULL,
	status VARCHAR NOT NULL,
	backbone VARCHAR NOT NULL,
	head VARCHAR NOT NULL,
	params JSON,
	metrics JSON,
	labels JSON,
	sample_count INTEGER NOT NULL,
	annotation_counter INTEGER NOT NULL,
	train_seconds FLOAT NOT NULL,
	parent_version INTEGER,
	labels_changed INTEGER,
	decision JSON,
	"trigger" VARCHAR NOT NULL,
	created_at DATETIME NOT NULL,
	deployed_at DATETIME,
	artifact_sha256 VARCHAR,
	PRIMARY KEY (id),
	UNIQUE (function_id, version),
	FOREIGN KEY(function_id) REFERENCES function (id) ON DELETE CASCADE
);

CREATE INDEX ix_modelversion_function_id ON modelversion (function_id);

CREATE TABLE novelmark (
	item_id VARCHAR NOT NULL,
	function_id VARCHAR NOT NULL,
	marked_novel BOOLEAN NOT NULL,
	dismissed BOOLEAN NOT NULL,
	updated_at DATETIME NOT NULL,
	PRIMARY KEY (item_id),
	FOREIGN KEY(function_id) REFERENCES function (id) ON DELETE CASCADE
);

CREATE INDEX ix_novelmark_function_id ON novelmark (function_id);

CREATE TABLE reviewitem (
	id VARCHAR NOT NULL,
	function_id VARCHAR NOT NULL,
	kind VARCHAR NOT NULL,
	given_label VARCHAR,
	suggested_label VARCHAR,
	blob VARCHAR NOT NULL,
	embedding BLOB NOT NULL,
	status VARCHAR NOT NULL,
	predicted_label VARCHAR,
	confidence FLOAT,
	model_version INTEGER,
	reason VARCHAR NOT NULL,
	score FLOAT NOT NULL,
	scores JSON,
	label_id VARCHAR,
	sample_id VARCHAR,
	annotated_by VARCHAR,
	created_at DATETIME NOT NULL,
	updated_at DATETIME NOT NULL,
	PRIMARY KEY (id),
	FOREIGN KEY(function_id) REFERENCES function (id) ON DELETE CASCADE,
	FOREIGN KEY(label_id) REFERENCES label (id)
);

CREATE INDEX ix_reviewitem_blob ON reviewitem (blob);

CREATE INDEX ix_reviewitem_function_id ON reviewitem (function_id);

CREATE INDEX ix_reviewitem_kind ON reviewitem (kind);

CREATE INDEX ix_reviewitem_status ON reviewitem (status);

CREATE TABLE sample (
	id VARCHAR NOT NULL,
	function_id VARCHAR NOT NULL,
	blob VARCHAR NOT NULL,
	embedding BLOB NOT NULL,
	label_id VARCHAR,
	external_id VARCHAR,
	source VARCHAR NOT NULL,
	review_item_id VARCHAR,
	created_at DATETIME NOT NULL,
	annotated_at DATETIME,
	label_changed_at DATETIME,
	confirmed_label_id VARCHAR,
	PRIMARY KEY (id),
	UNIQUE (function_id, external_id),
	FOREIGN KEY(function_id) REFERENCES function (id) ON DELETE CASCADE,
	FOREIGN KEY(label_id) REFERENCES label (id)
);

CREATE INDEX ix_sample_blob ON sample (blob);

CREATE INDEX ix_sample_function_id ON sample (function_id);

CREATE INDEX ix_sample_label_id ON sample (label_id);

CREATE INDEX ix_sample_review_item_id ON sample (review_item_id);
