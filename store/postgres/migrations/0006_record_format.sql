-- What a stream's recorder writes (FLV, MP4, HLS) as its source said or its
-- last file showed, so that events fired by timers (RECORD_OVER after the
-- pause) report it too; '' when unknown (the domain's record_format then).

ALTER TABLE streams ADD COLUMN record_format text NOT NULL DEFAULT '';
