-- The phone page (issue 13): a guard's or technician's session lasts a shift. Each session
-- keeps the idle timeout it was started with (null: the setting for every role, as before).
ALTER TABLE sessions ADD COLUMN idle_timeout interval;
