DROP INDEX posts_author_id_idx;
