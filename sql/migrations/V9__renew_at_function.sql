-- When a certificate issued at `issued` and expiring at `not_after` is next due under a policy
-- with `window_days` and `fraction`: the earlier of the window before expiry and `fraction` of the
-- lifetime, but the window only counts when it leaves more than a third of the lifetime first (a
-- 24-hour certificate under a 30-day window would otherwise be due the moment it is issued; such
-- certificates renew at the fraction). One definition for every statement that sets renew_at.
-- STABLE, not IMMUTABLE: timestamptz minus a day interval depends on the session time zone.
CREATE FUNCTION certctl_renew_at(issued TIMESTAMPTZ, not_after TIMESTAMPTZ, window_days INTEGER,
                                 fraction DOUBLE PRECISION)
RETURNS TIMESTAMPTZ LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN not_after - make_interval(days => window_days) > issued + (not_after - issued) / 3
        THEN LEAST(not_after - make_interval(days => window_days), issued + (not_after - issued) * fraction)
        ELSE issued + (not_after - issued) * fraction
    END
$$;
