// Words the screens show, per language (Vietnamese first).
export const LABELS = {
  vi: {
    now_calling: "Đang mời", room: "Phòng", last_calls: "Số vừa gọi", waiting: "Đang chờ", minutes: "phút",
    about: "khoảng", nobody: "Không có ai chờ", enable_sound: "Bật âm thanh", sound_on: "Âm thanh: bật",
    offline: "Mất kết nối, đang thử lại…", connecting: "Đang kết nối…", live: "Trực tuyến", current: "Đang khám",
    next: "Tiếp theo", none: "—", invite: "Mời số", to: "vào", choose_service: "Chọn dịch vụ",
    your_number: "Số của bạn", est_wait: "Thời gian chờ ước tính", print: "In phiếu", new_ticket: "Lấy số khác",
    scan: "Quét mã để xem lượt của bạn trên điện thoại", people_waiting: "người đang chờ", kiosk_title: "Lấy số thứ tự",
    call_next: "Gọi số tiếp", recall: "Gọi lại", skip: "Bỏ qua", start: "Bắt đầu khám", done: "Xong",
    transfer: "Chuyển", transfer_to: "Chuyển sang dịch vụ", return_to_room: "Quay lại phòng này sau",
    choose_room: "Chọn phòng", room_control: "Điều khiển phòng", shortcuts: "Phím tắt", status: "Trạng thái",
    called: "đã gọi", in_service: "đang khám", waiting_status: "đang chờ", skipped: "bỏ qua", no_current: "Chưa gọi ai",
    error: "Lỗi", priority: "Ưu tiên", number: "Số", wait: "Chờ", home: "Trang chính",
  },
  en: {
    now_calling: "Now calling", room: "Room", last_calls: "Last calls", waiting: "Waiting", minutes: "min",
    about: "about", nobody: "Nobody waiting", enable_sound: "Enable sound", sound_on: "Sound: on",
    offline: "Connection lost, retrying…", connecting: "Connecting…", live: "Live", current: "Now serving",
    next: "Next", none: "—", invite: "Number", to: "to", choose_service: "Choose a service",
    your_number: "Your number", est_wait: "Estimated wait", print: "Print ticket", new_ticket: "Another ticket",
    scan: "Scan to follow your turn on your phone", people_waiting: "waiting", kiosk_title: "Take a number",
    call_next: "Call next", recall: "Recall", skip: "Skip", start: "Start", done: "Done",
    transfer: "Transfer", transfer_to: "Transfer to service", return_to_room: "Come back to this room afterwards",
    choose_room: "Choose a room", room_control: "Room control", shortcuts: "Shortcuts", status: "Status",
    called: "called", in_service: "in service", waiting_status: "waiting", skipped: "skipped", no_current: "Nobody called yet",
    error: "Error", priority: "Priority", number: "Number", wait: "Wait", home: "Home",
  },
  zh: {
    now_calling: "正在叫号", room: "诊室", last_calls: "最近叫号", waiting: "候诊", minutes: "分钟",
    about: "约", nobody: "无人候诊", enable_sound: "开启声音", sound_on: "声音：开",
    offline: "连接中断，正在重试…", connecting: "正在连接…", live: "在线", current: "正在就诊",
    next: "下一位", none: "—", invite: "请", to: "到", choose_service: "请选择服务",
    your_number: "您的号码", est_wait: "预计等候", print: "打印", new_ticket: "再取一个号",
    scan: "扫码在手机上查看排队进度", people_waiting: "人候诊", kiosk_title: "取号",
    call_next: "叫下一位", recall: "重叫", skip: "过号", start: "开始就诊", done: "完成",
    transfer: "转诊", transfer_to: "转到服务", return_to_room: "完成后回到本诊室",
    choose_room: "选择诊室", room_control: "诊室控制", shortcuts: "快捷键", status: "状态",
    called: "已叫号", in_service: "就诊中", waiting_status: "候诊", skipped: "过号", no_current: "尚未叫号",
    error: "错误", priority: "优先", number: "号码", wait: "等候", home: "首页",
  },
};

export const LANGUAGES = ["vi", "en", "zh"];
