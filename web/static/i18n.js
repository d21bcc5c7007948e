/* The ops-room page's words and formats: Vietnamese by default, English on request.
 *
 * `OpsI18n.t(key, params)` gives the text of a key in the current language ("{name}" in a
 * text is replaced by `params.name`); numbers, percentages and times are formatted with
 * Intl in the language's locale (vi-VN or en-GB), always in Vietnam time.
 */
"use strict";

(function () {
  const TIME_ZONE = "Asia/Ho_Chi_Minh";
  const LOCALES = { vi: "vi-VN", en: "en-GB" };
  const STORAGE_KEY = "opsCenter.lang";

  const TEXTS = {
    vi: {
      "app.title": "Trung tâm Giám sát, điều hành",
      "app.subtitle": "Bảng điều hành trực tuyến",
      "scope.all": "Toàn tỉnh",
      "scope.label": "Địa bàn",
      "lang.switch": "English",
      "lang.switchTitle": "Switch to English",
      "conn.connecting": "Đang kết nối",
      "conn.live": "Trực tuyến",
      "conn.reconnecting": "Mất kết nối – thử lại sau {seconds} giây",
      "conn.reconnectingNow": "Đang kết nối lại",
      "conn.resync": "Đang đồng bộ lại",
      "conn.interrupted": "Luồng dữ liệu gián đoạn",
      "conn.offline": "Mất kết nối",
      "tile.camera": "Camera an ninh",
      "tile.radio": "Đài truyền thanh",
      "tile.broadcasts": "Đang phát thanh",
      "tile.emergency": "Bản tin khẩn cấp",
      "tile.received": "Hồ sơ tiếp nhận hôm nay",
      "tile.completed": "Hồ sơ đã giải quyết hôm nay",
      "tile.onTime": "Tỷ lệ đúng hạn hôm nay",
      "tile.overdue": "Hồ sơ quá hạn",
      "tile.kpis": "Chỉ tiêu chuyển đổi số",
      "tile.alarms": "Cảnh báo đang mở",
      "sub.online": "trực tuyến",
      "sub.offline": "mất kết nối",
      "sub.degraded": "suy giảm",
      "sub.onTrack": "đúng tiến độ",
      "sub.offTrack": "chậm tiến độ",
      "sub.emergencyNone": "không có bản tin khẩn",
      "sub.emergencyOn": "đang phát khẩn cấp",
      "sub.stations": "trạm đang phát",
      "sub.dossiers": "hồ sơ",
      "sub.needAction": "cần xử lý",
      "sub.noData": "chưa có hồ sơ hoàn thành",
      "panel.devices": "Thiết bị theo địa bàn",
      "panel.alarms": "Cảnh báo đang mở",
      "panel.kpis": "Chỉ tiêu chuyển đổi số",
      "panel.feed": "Diễn biến trực tiếp",
      "panel.services": "Hồ sơ theo giờ hôm nay",
      "devices.unit": "Đơn vị",
      "devices.cameras": "Camera",
      "devices.radio": "Truyền thanh",
      "devices.none": "Chưa có thiết bị nào được đăng ký",
      "devices.more": "và {count} đơn vị khác",
      "alarms.none": "Không có cảnh báo nào đang mở",
      "alarms.ack": "Xác nhận",
      "alarms.resolve": "Đã xử lý",
      "alarms.acknowledged": "Đã xác nhận",
      "alarms.active": "Mới",
      "alarms.forbidden": "Khóa truy cập này không có quyền xử lý cảnh báo (cần vai trò điều hành viên).",
      "alarms.failed": "Không thực hiện được: {detail}",
      "alarms.done.ack": "Đã xác nhận cảnh báo",
      "alarms.done.resolve": "Đã đóng cảnh báo",
      "kpis.none": "Chưa có chỉ tiêu nào",
      "kpis.target": "mục tiêu {target}",
      "kpis.deadline": "hạn {date}",
      "kpis.noValue": "chưa báo cáo",
      "status.met": "Đạt",
      "status.on_track": "Đúng tiến độ",
      "status.off_track": "Chậm tiến độ",
      "feed.none": "Chưa có sự kiện",
      "chart.received": "Tiếp nhận",
      "chart.completed": "Giải quyết",
      "chart.total": "{received} tiếp nhận · {completed} giải quyết · {online} trực tuyến",
      "footer.position": "Vị trí nhật ký {position}",
      "footer.updated": "Cập nhật {time}",
      "footer.demo": "Dữ liệu mẫu",
      "auth.title": "Cần mã truy cập",
      "auth.missing": "Màn hình này cần một khóa truy cập (vai trò xem hoặc điều hành) để hiển thị dữ liệu.",
      "auth.refused": "Khóa truy cập không hợp lệ, đã bị thu hồi hoặc không có quyền xem dữ liệu.",
      "auth.unavailable": "Không kết nối được máy chủ. Đang thử lại…",
      "auth.placeholder": "Dán khóa truy cập vào đây",
      "auth.submit": "Kết nối",
      "auth.hint": "Có thể mở trang với địa chỉ …/?token=KHÓA; khóa được lưu trên trình duyệt này và được xóa khỏi thanh địa chỉ.",
      "auth.forget": "Đổi khóa",
      "ago.now": "vừa xong",
      "ago.minutes": "{n} phút trước",
      "ago.hours": "{n} giờ trước",
      "ago.days": "{n} ngày trước",
      "severity.critical": "Nghiêm trọng",
      "severity.warning": "Cảnh báo",
      "severity.major": "Nghiêm trọng",
      "severity.minor": "Thấp",
      "severity.info": "Thông tin",
      "cause.device_offline": "Thiết bị mất kết nối",
      "cause.camera_offline": "Camera mất kết nối",
      "cause.radio_offline": "Đài truyền thanh mất kết nối",
      "cause.station_offline": "Đài truyền thanh mất kết nối",
      "cause.cluster_fault": "Sự cố cụm loa",
      "cause.emergency_broadcast": "Đang phát bản tin khẩn cấp",
      "cause.camera_alert": "Cảnh báo từ camera",
      "cause.critical_camera_alert": "Cảnh báo camera nghiêm trọng",
      "cause.dossier_overdue": "Hồ sơ quá hạn",
      "cause.kpi_off_track": "Chỉ tiêu chậm tiến độ",
      "kind.camera": "Camera",
      "kind.radio": "Đài",
      "kind.dossier": "Hồ sơ",
      "kind.kpi": "Chỉ tiêu",
      "value.online": "trực tuyến",
      "value.offline": "mất kết nối",
      "value.degraded": "suy giảm",
      "value.normal": "thường",
      "value.priority": "ưu tiên",
      "value.emergency": "KHẨN CẤP",
      "value.approved": "chấp thuận",
      "value.refused": "từ chối",
      "value.power": "mất điện",
      "value.network": "mất mạng",
      "value.speaker": "hỏng loa",
      "value.intrusion": "xâm nhập",
      "value.fire": "cháy",
      "value.crowd": "tụ tập đông người",
      "value.traffic_violation": "vi phạm giao thông",
      "value.watchlist_plate": "biển số cần theo dõi",
      "value.tamper": "phá hoại camera",
      "value.full_online": "toàn trình",
      "value.partial_online": "một phần",
      "value.counter": "tại quầy",
      "value.postal": "bưu chính",
      "event.radio.station.registered": "Đăng ký đài truyền thanh",
      "event.radio.station.status": "Đài truyền thanh {value}",
      "event.radio.broadcast.started": "Bắt đầu phát ({value})",
      "event.radio.broadcast.ended": "Kết thúc phát",
      "event.radio.cluster.fault": "Sự cố cụm loa {cluster}: {value}",
      "event.radio.cluster.restored": "Cụm loa {cluster} hoạt động lại",
      "event.camera.registered": "Đăng ký camera",
      "event.camera.status": "Camera {value}",
      "event.camera.alert": "Cảnh báo camera: {value}",
      "event.dossier.received": "Tiếp nhận hồ sơ",
      "event.dossier.supplement_requested": "Yêu cầu bổ sung hồ sơ",
      "event.dossier.completed": "Giải quyết hồ sơ ({value})",
      "event.dossier.withdrawn": "Rút hồ sơ",
      "event.kpi.defined": "Giao chỉ tiêu",
      "event.kpi.reported": "Báo cáo chỉ tiêu kỳ {period}: {value}",
      "event.kpi.target_revised": "Điều chỉnh mục tiêu: {value}",
      "event.alarm": "Cảnh báo",
      "event.Alarm.Raised": "Cảnh báo mới: {value}",
      "event.Alarm.Repeated": "Cảnh báo cập nhật: {value}",
      "event.Alarm.Acknowledged": "{by} xác nhận cảnh báo",
      "event.Alarm.Resolved": "{by} đóng cảnh báo",
      "event.Alarm.ResolvedAutomatically": "Cảnh báo tự đóng: nguyên nhân đã hết",
      "alarms.summary": "{critical} nghiêm trọng · {warning} cảnh báo · {info} thông tin",
      "alarms.by": "bởi {by}",
    },
    en: {
      "app.title": "Operations Center",
      "app.subtitle": "Live operations board",
      "scope.all": "Whole province",
      "scope.label": "Area",
      "lang.switch": "Tiếng Việt",
      "lang.switchTitle": "Chuyển sang tiếng Việt",
      "conn.connecting": "Connecting",
      "conn.live": "Live",
      "conn.reconnecting": "Disconnected – retrying in {seconds} s",
      "conn.reconnectingNow": "Reconnecting",
      "conn.resync": "Resynchronising",
      "conn.interrupted": "Live updates interrupted",
      "conn.offline": "Disconnected",
      "tile.camera": "Security cameras",
      "tile.radio": "Radio stations",
      "tile.broadcasts": "On air",
      "tile.emergency": "Emergency bulletins",
      "tile.received": "Dossiers received today",
      "tile.completed": "Dossiers completed today",
      "tile.onTime": "On-time rate today",
      "tile.overdue": "Overdue dossiers",
      "tile.kpis": "Digital transformation KPIs",
      "tile.alarms": "Active alarms",
      "sub.online": "online",
      "sub.offline": "offline",
      "sub.degraded": "degraded",
      "sub.onTrack": "on track",
      "sub.offTrack": "off track",
      "sub.emergencyNone": "no emergency bulletin",
      "sub.emergencyOn": "emergency on air",
      "sub.stations": "stations on air",
      "sub.dossiers": "dossiers",
      "sub.needAction": "need action",
      "sub.noData": "none completed yet",
      "panel.devices": "Devices by area",
      "panel.alarms": "Active alarms",
      "panel.kpis": "Digital transformation KPIs",
      "panel.feed": "Live feed",
      "panel.services": "Dossiers per hour today",
      "devices.unit": "Unit",
      "devices.cameras": "Cameras",
      "devices.radio": "Radio",
      "devices.none": "No device registered yet",
      "devices.more": "and {count} more units",
      "alarms.none": "No active alarm",
      "alarms.ack": "Acknowledge",
      "alarms.resolve": "Resolve",
      "alarms.acknowledged": "Acknowledged",
      "alarms.active": "New",
      "alarms.forbidden": "This key may not act on alarms (an operator key is needed).",
      "alarms.failed": "Could not do it: {detail}",
      "alarms.done.ack": "Alarm acknowledged",
      "alarms.done.resolve": "Alarm resolved",
      "kpis.none": "No indicator yet",
      "kpis.target": "target {target}",
      "kpis.deadline": "due {date}",
      "kpis.noValue": "not reported",
      "status.met": "Met",
      "status.on_track": "On track",
      "status.off_track": "Off track",
      "feed.none": "No event yet",
      "chart.received": "Received",
      "chart.completed": "Completed",
      "chart.total": "{received} received · {completed} completed · {online} online",
      "footer.position": "Log position {position}",
      "footer.updated": "Updated {time}",
      "footer.demo": "Demo data",
      "auth.title": "Access key needed",
      "auth.missing": "This screen needs an access key (viewer or operator role) to show data.",
      "auth.refused": "The access key is invalid, revoked, or may not read data.",
      "auth.unavailable": "The server cannot be reached. Retrying…",
      "auth.placeholder": "Paste the access key here",
      "auth.submit": "Connect",
      "auth.hint": "You can open the page as …/?token=KEY; the key is kept in this browser and removed from the address bar.",
      "auth.forget": "Change key",
      "ago.now": "just now",
      "ago.minutes": "{n} min ago",
      "ago.hours": "{n} h ago",
      "ago.days": "{n} d ago",
      "severity.critical": "Critical",
      "severity.warning": "Warning",
      "severity.major": "Major",
      "severity.minor": "Minor",
      "severity.info": "Info",
      "cause.device_offline": "Device offline",
      "cause.camera_offline": "Camera offline",
      "cause.radio_offline": "Radio station offline",
      "cause.station_offline": "Radio station offline",
      "cause.cluster_fault": "Speaker cluster fault",
      "cause.emergency_broadcast": "Emergency bulletin on air",
      "cause.camera_alert": "Camera alert",
      "cause.critical_camera_alert": "Critical camera alert",
      "cause.dossier_overdue": "Dossier overdue",
      "cause.kpi_off_track": "KPI off track",
      "kind.camera": "Camera",
      "kind.radio": "Station",
      "kind.dossier": "Dossier",
      "kind.kpi": "KPI",
      "value.online": "online",
      "value.offline": "offline",
      "value.degraded": "degraded",
      "value.normal": "normal",
      "value.priority": "priority",
      "value.emergency": "EMERGENCY",
      "value.approved": "approved",
      "value.refused": "refused",
      "value.power": "power",
      "value.network": "network",
      "value.speaker": "speaker",
      "value.intrusion": "intrusion",
      "value.fire": "fire",
      "value.crowd": "crowd",
      "value.traffic_violation": "traffic violation",
      "value.watchlist_plate": "watch-listed plate",
      "value.tamper": "tampering",
      "value.full_online": "fully online",
      "value.partial_online": "partly online",
      "value.counter": "at the counter",
      "value.postal": "by post",
      "event.radio.station.registered": "Radio station registered",
      "event.radio.station.status": "Radio station {value}",
      "event.radio.broadcast.started": "Broadcast started ({value})",
      "event.radio.broadcast.ended": "Broadcast ended",
      "event.radio.cluster.fault": "Speaker cluster {cluster} fault: {value}",
      "event.radio.cluster.restored": "Speaker cluster {cluster} restored",
      "event.camera.registered": "Camera registered",
      "event.camera.status": "Camera {value}",
      "event.camera.alert": "Camera alert: {value}",
      "event.dossier.received": "Dossier received",
      "event.dossier.supplement_requested": "Supplement requested",
      "event.dossier.completed": "Dossier completed ({value})",
      "event.dossier.withdrawn": "Dossier withdrawn",
      "event.kpi.defined": "KPI defined",
      "event.kpi.reported": "KPI reported for {period}: {value}",
      "event.kpi.target_revised": "KPI target revised: {value}",
      "event.alarm": "Alarm",
      "event.Alarm.Raised": "New alarm: {value}",
      "event.Alarm.Repeated": "Alarm updated: {value}",
      "event.Alarm.Acknowledged": "{by} acknowledged an alarm",
      "event.Alarm.Resolved": "{by} resolved an alarm",
      "event.Alarm.ResolvedAutomatically": "Alarm closed: its cause cleared",
      "alarms.summary": "{critical} critical · {warning} warning · {info} info",
      "alarms.by": "by {by}",
    },
  };

  function initialLanguage() {
    try {
      const saved = window.localStorage.getItem(STORAGE_KEY);
      if (saved && TEXTS[saved]) return saved;
    } catch (_e) {
      /* storage may be disabled: Vietnamese */
    }
    return "vi";
  }

  let lang = initialLanguage();
  let numberFormat, percentFormat, timeFormat, clockFormat, dateFormat, hourFormat;

  function buildFormats() {
    const locale = LOCALES[lang];
    numberFormat = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });
    percentFormat = new Intl.NumberFormat(locale, {
      style: "percent",
      maximumFractionDigits: 1,
    });
    timeFormat = new Intl.DateTimeFormat(locale, {
      timeZone: TIME_ZONE,
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hour12: false,
    });
    clockFormat = new Intl.DateTimeFormat(locale, {
      timeZone: TIME_ZONE,
      weekday: "long",
      day: "2-digit",
      month: "2-digit",
      year: "numeric",
    });
    dateFormat = new Intl.DateTimeFormat(locale, {
      timeZone: TIME_ZONE,
      day: "2-digit",
      month: "2-digit",
      year: "numeric",
    });
    hourFormat = new Intl.DateTimeFormat(locale, {
      timeZone: TIME_ZONE,
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
  }
  buildFormats();

  function t(key, params) {
    let text = TEXTS[lang][key];
    if (text === undefined) text = TEXTS.vi[key];
    if (text === undefined) return key;
    if (params) {
      text = text.replace(/\{(\w+)\}/g, (whole, name) =>
        params[name] === undefined || params[name] === null ? "" : String(params[name]),
      );
    }
    return text;
  }

  function has(key) {
    return TEXTS[lang][key] !== undefined;
  }

  function setLanguage(next) {
    if (!TEXTS[next]) return;
    lang = next;
    buildFormats();
    try {
      window.localStorage.setItem(STORAGE_KEY, next);
    } catch (_e) {
      /* not remembered */
    }
    document.documentElement.lang = next;
  }

  function toDate(value) {
    return value instanceof Date ? value : new Date(value);
  }

  function ago(value, now) {
    const seconds = Math.max(0, ((now || Date.now()) - toDate(value).getTime()) / 1000);
    if (seconds < 60) return t("ago.now");
    if (seconds < 3600) return t("ago.minutes", { n: Math.floor(seconds / 60) });
    if (seconds < 86400) return t("ago.hours", { n: Math.floor(seconds / 3600) });
    return t("ago.days", { n: Math.floor(seconds / 86400) });
  }

  window.OpsI18n = {
    TIME_ZONE,
    t,
    has,
    get lang() {
      return lang;
    },
    setLanguage,
    number: (value) => (value === null || value === undefined ? "–" : numberFormat.format(value)),
    percent: (value) => (value === null || value === undefined ? "–" : percentFormat.format(value)),
    time: (value) => timeFormat.format(toDate(value)),
    clock: (value) => clockFormat.format(toDate(value)),
    date: (value) => dateFormat.format(toDate(value)),
    hour: (value) => hourFormat.format(toDate(value)),
    ago,
  };
})();
