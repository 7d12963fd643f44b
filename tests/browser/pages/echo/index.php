<?php
/*
 * A page of a "Laravel application" for the Echo tests: logs in the user of
 * ?user= (a session, as Laravel's), puts the CSRF token in the csrf-token
 * meta tag (where Echo finds it), and loads laravel-echo ?echo=1|2 with
 * comet-echo.js: as classic scripts (?form=script: the IIFE builds and
 * comet-echo.js) or as ES modules (?form=module: dist/echo.js and
 * comet-echo.mjs, as a bundler would). page.js makes window.Echo.
 */
require __DIR__ . '/session.php';

$user = (int)($_GET['user'] ?? 0);
if (!isset(USERS[$user])) {
    http_response_code(400);
    exit('?user= is one of ' . implode(', ', array_keys(USERS)));
}
$_SESSION['user'] = $user;
if (empty($_SESSION['csrf'])) {
    $_SESSION['csrf'] = bin2hex(random_bytes(20));
}
$echo = ($_GET['echo'] ?? '2') === '1' ? 'echo1' : 'echo2';
$module = ($_GET['form'] ?? 'module') === 'module';
header('Cache-Control: no-store');
?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="csrf-token" content="<?= htmlspecialchars($_SESSION['csrf']) ?>">
<title>Echo on comet-fcgi (test page)</title>
</head>
<body data-user="<?= $user ?>">
<p id="status">loading</p>
<script src="page.js"></script>
<?php if ($module): ?>
<script type="module">
import Echo from "/vendor/<?= $echo ?>/echo.js";
import CometEcho from "/comet-echo.mjs";
start(Echo, CometEcho);
</script>
<?php else: ?>
<script src="/comet.js"></script>
<script src="/comet-echo.js"></script>
<script src="/vendor/<?= $echo ?>/echo.iife.js"></script>
<script>
// 1.x's IIFE defines the class as Echo, 2.x's the module (its default).
start(typeof Echo === "function" ? Echo : Echo.default, CometEcho);
</script>
<?php endif ?>
</body>
</html>
